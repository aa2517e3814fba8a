/*
 * schema: the JSON Schema subset of schema.h. Three parts: the document
 * validator and the schema checker, both driven by one keyword table (so a
 * keyword is either fully supported or refused at load), and the registry of
 * <EventName>.v<N>.json files. "pattern" uses the engine of schema_re.c.
 */
#include "schema.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "diag.h"
#include "json.h"
#include "schema_re.h"
#include "uuid.h"

#define SCHEMA_MAX_DEPTH 32
#define SCHEMA_FILE_MAX (1024 * 1024)
#define SCHEMA_NAME_MAX 64

/* ------------------------------------------------------------ paths, values */

/* A path being built: "$.data.title" for documents, "#/properties/data"
 * for schemas (JSON Pointer). */
typedef struct spath {
    char buf[384];
    size_t len;
    bool pointer;
} spath_t;

static void spath_init(spath_t *p, bool pointer)
{
    p->pointer = pointer;
    p->len = (size_t)snprintf(p->buf, sizeof(p->buf), "%s", pointer ? "#" : "$");
}

static void spath_add(spath_t *p, size_t n)
{
    p->len += n;
    if (p->len >= sizeof(p->buf)) p->len = sizeof(p->buf) - 1;
}

static bool is_ident(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return false;
    return true;
}

/* Append a member name; returns the old length for spath_pop. */
static size_t spath_push(spath_t *p, const char *key)
{
    size_t old = p->len, room = sizeof(p->buf) - p->len;
    char *at = p->buf + p->len;
    int n;
    if (p->pointer)
        n = snprintf(at, room, "/%s", key);
    else if (is_ident(key))
        n = snprintf(at, room, ".%s", key);
    else
        n = snprintf(at, room, "[\"%s\"]", key);
    spath_add(p, n < 0 ? 0 : (size_t)n);
    return old;
}

static size_t spath_push_index(spath_t *p, int i)
{
    size_t old = p->len;
    spath_add(p, (size_t)snprintf(p->buf + p->len, sizeof(p->buf) - p->len, "[%d]", i));
    return old;
}

static void spath_pop(spath_t *p, size_t old)
{
    p->len = old;
    p->buf[old] = '\0';
}

/* A DIAG_VALIDATION diag "<path>: <message>". */
__attribute__((format(printf, 2, 3))) static int spath_fail(const spath_t *p, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return diag_set(DIAG_VALIDATION, "%s: %s", p->buf, msg);
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsNumber(v)) return json_is_int(v, NULL) ? "integer" : "number";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "array";
    return "object";
}

/* The shortest text that reads back as `d`. */
static void format_number(double d, char *buf, size_t n)
{
    snprintf(buf, n, "%.15g", d);
    if (strtod(buf, NULL) != d) snprintf(buf, n, "%.17g", d);
}

/* A short rendering of a value for a message: numbers and (truncated)
 * strings as they are, anything else by its type. */
static void describe(const cJSON *v, char *buf, size_t n)
{
    if (cJSON_IsNumber(v)) {
        format_number(v->valuedouble, buf, n);
    } else if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        size_t len = strlen(s), cut = len > 40 ? 40 : len;
        while (cut > 0 && cut < len && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
        snprintf(buf, n, "\"%.*s\"%s", (int)cut, s, cut < len ? "..." : "");
    } else if (cJSON_IsBool(v)) {
        snprintf(buf, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else {
        snprintf(buf, n, "%s", type_name(v));
    }
}

/* ---------------------------------------------------------------- formats */

static bool format_uuid(const char *s)
{
    return uuid_valid(s);
}

static bool format_date_time(const char *s)
{
    int64_t ms;
    return clock_parse_rfc3339(s, &ms) == 0;
}

static bool format_date(const char *s)
{
    return clock_day_check(s) == 0;
}

static const struct {
    const char *name;
    bool (*ok)(const char *);
} formats[] = {{"uuid", format_uuid}, {"date-time", format_date_time}, {"date", format_date}};

static bool (*format_fn(const char *name))(const char *)
{
    for (size_t i = 0; i < sizeof(formats) / sizeof(*formats); i++)
        if (strcmp(formats[i].name, name) == 0) return formats[i].ok;
    return NULL;
}

/* -------------------------------------------------------------- validator */

static int validate_node(spath_t *p, const cJSON *schema, const cJSON *doc, int depth);
typedef struct cnode cnode_t;
static cnode_t *cnode_compile(const cJSON *schema, int depth);
static int cnode_validate(spath_t *p, const cnode_t *n, const cJSON *doc, int depth);

/* A keyword whose value is malformed (only possible when a schema skipped
 * schema_check): fail rather than check less. */
static int bad_keyword(const spath_t *p, const char *kw)
{
    return spath_fail(p, "schema keyword '%s' is malformed", kw);
}

static const char *const type_names[] = {"string", "integer", "number", "boolean",
                                         "object", "array",   "null"};

static bool type_known(const char *t)
{
    for (size_t i = 0; i < sizeof(type_names) / sizeof(*type_names); i++)
        if (strcmp(type_names[i], t) == 0) return true;
    return false;
}

static bool type_is(const char *t, const cJSON *v)
{
    if (strcmp(t, "string") == 0) return cJSON_IsString(v);
    if (strcmp(t, "integer") == 0) return json_is_int(v, NULL);
    if (strcmp(t, "number") == 0) return cJSON_IsNumber(v);
    if (strcmp(t, "boolean") == 0) return cJSON_IsBool(v);
    if (strcmp(t, "object") == 0) return cJSON_IsObject(v);
    if (strcmp(t, "array") == 0) return cJSON_IsArray(v);
    if (strcmp(t, "null") == 0) return cJSON_IsNull(v);
    return false;
}

/* The common case without formatting anything: 1 when `doc` has one of the
 * types (all given as strings), 0 otherwise. */
static int type_matches(const cJSON *kw, const cJSON *doc)
{
    if (cJSON_IsString(kw)) return type_is(kw->valuestring, doc);
    if (!cJSON_IsArray(kw)) return 0;
    int ok = 0;
    const cJSON *one;
    cJSON_ArrayForEach(one, kw)
    {
        if (!cJSON_IsString(one)) return 0;
        ok = ok || type_is(one->valuestring, doc);
    }
    return ok;
}

static int v_type(spath_t *p, const cJSON *kw, const cJSON *schema, const cJSON *doc, int depth)
{
    if (type_matches(kw, doc)) return 0;
    char want[128] = "";
    size_t wlen = 0;
    bool ok = false, want_int = false, want_num = false;
    const cJSON *one = kw;
    if (cJSON_IsArray(kw)) one = kw->child;
    for (; one; one = cJSON_IsArray(kw) ? one->next : NULL) {
        if (!cJSON_IsString(one)) return bad_keyword(p, "type");
        ok = ok || type_is(one->valuestring, doc);
        want_int = want_int || strcmp(one->valuestring, "integer") == 0;
        want_num = want_num || strcmp(one->valuestring, "number") == 0;
        int n = snprintf(want + wlen, sizeof(want) - wlen, "%s%s", wlen ? " or " : "",
                         one->valuestring);
        wlen = n < 0 || (size_t)n >= sizeof(want) - wlen ? sizeof(want) - 1 : wlen + (size_t)n;
    }
    if (ok) return 0;
    if (want_int && !want_num && cJSON_IsNumber(doc)) {
        char num[40];
        describe(doc, num, sizeof(num));
        double d = doc->valuedouble;
        if (isfinite(d) && d == floor(d))
            return spath_fail(p, "%s is outside the exact integer range (at most 15 digits)", num);
        return spath_fail(p, "%s is not an integer", num);
    }
    return spath_fail(p, "expected type %s, got %s", want, type_name(doc));
}

static int v_const(spath_t *p, const cJSON *kw, const cJSON *schema, const cJSON *doc, int depth)
{
    if (cJSON_Compare(kw, doc, true)) return 0;
    char want[64];
    describe(kw, want, sizeof(want));
    return spath_fail(p, "does not equal const %s", want);
}

static int v_enum(spath_t *p, const cJSON *kw, const cJSON *schema, const cJSON *doc, int depth)
{
    if (!cJSON_IsArray(kw)) return bad_keyword(p, "enum");
    const cJSON *one;
    cJSON_ArrayForEach(one, kw)
    {
        if (cJSON_Compare(one, doc, true)) return 0;
    }
    char got[64];
    describe(doc, got, sizeof(got));
    return spath_fail(p, "%s is not one of the enum values", got);
}

static int v_minimum(spath_t *p, const cJSON *kw, const cJSON *schema, const cJSON *doc, int depth)
{
    if (!cJSON_IsNumber(kw)) return bad_keyword(p, "minimum");
    if (!cJSON_IsNumber(doc) || doc->valuedouble >= kw->valuedouble) return 0;
    char got[40], lim[40];
    describe(doc, got, sizeof(got));
    describe(kw, lim, sizeof(lim));
    return spath_fail(p, "%s is less than minimum %s", got, lim);
}

static int v_maximum(spath_t *p, const cJSON *kw, const cJSON *schema, const cJSON *doc, int depth)
{
    if (!cJSON_IsNumber(kw)) return bad_keyword(p, "maximum");
    if (!cJSON_IsNumber(doc) || doc->valuedouble <= kw->valuedouble) return 0;
    char got[40], lim[40];
    describe(doc, got, sizeof(got));
    describe(kw, lim, sizeof(lim));
    return spath_fail(p, "%s is greater than maximum %s", got, lim);
}

static int v_min_length(spath_t *p, const cJSON *kw, const cJSON *schema, const cJSON *doc,
                        int depth)
{
    int64_t lim;
    if (!json_is_int(kw, &lim) || lim < 0) return bad_keyword(p, "minLength");
    if (!cJSON_IsString(doc)) return 0;
    size_t n = schema_re_length(doc->valuestring);
    if (n >= (uint64_t)lim) return 0;
    return spath_fail(p, "length %zu is less than minLength %lld", n, (long long)lim);
}

static int v_max_length(spath_t *p, const cJSON *kw, const cJSON *schema, const cJSON *doc,
                        int depth)
{
    int64_t lim;
    if (!json_is_int(kw, &lim) || lim < 0) return bad_keyword(p, "maxLength");
    if (!cJSON_IsString(doc)) return 0;
    size_t n = schema_re_length(doc->valuestring);
    if (n <= (uint64_t)lim) return 0;
    return spath_fail(p, "length %zu is greater than maxLength %lld", n, (long long)lim);
}

static int v_pattern(spath_t *p, const cJSON *kw, const cJSON *schema, const cJSON *doc, int depth)
{
    if (!cJSON_IsString(kw)) return bad_keyword(p, "pattern");
    if (!cJSON_IsString(doc)) return 0;
    char err[128];
    schema_re_t *re = schema_re_compile(kw->valuestring, err, sizeof(err));
    int rc = re ? schema_re_search(re, doc->valuestring) : -3;
    schema_re_free(re);
    switch (rc) {
    case 1:
        return 0;
    case 0:
        return spath_fail(p, "does not match pattern %s", kw->valuestring);
    case -1:
        return spath_fail(p, "pattern %s needs too many steps", kw->valuestring);
    case -2:
        return diag_set(DIAG_INTERNAL, "out of memory");
    default:
        return bad_keyword(p, "pattern");
    }
}

static int v_format(spath_t *p, const cJSON *kw, const cJSON *schema, const cJSON *doc, int depth)
{
    bool (*ok)(const char *) = cJSON_IsString(kw) ? format_fn(kw->valuestring) : NULL;
    if (!ok) return bad_keyword(p, "format");
    if (!cJSON_IsString(doc) || ok(doc->valuestring)) return 0;
    return spath_fail(p, "does not match format %s", kw->valuestring);
}

static int v_required(spath_t *p, const cJSON *kw, const cJSON *schema, const cJSON *doc, int depth)
{
    if (!cJSON_IsArray(kw)) return bad_keyword(p, "required");
    if (!cJSON_IsObject(doc)) return 0;
    const cJSON *name;
    cJSON_ArrayForEach(name, kw)
    {
        if (!cJSON_IsString(name)) return bad_keyword(p, "required");
        if (!cJSON_GetObjectItemCaseSensitive(doc, name->valuestring))
            return spath_fail(p, "missing required property '%s'", name->valuestring);
    }
    return 0;
}

static int v_properties(spath_t *p, const cJSON *kw, const cJSON *schema, const cJSON *doc,
                        int depth)
{
    if (!cJSON_IsObject(kw)) return bad_keyword(p, "properties");
    if (!cJSON_IsObject(doc)) return 0;
    const cJSON *sub;
    cJSON_ArrayForEach(sub, kw)
    {
        const cJSON *member = cJSON_GetObjectItemCaseSensitive(doc, sub->string);
        if (!member) continue;
        size_t old = spath_push(p, sub->string);
        int rc = validate_node(p, sub, member, depth + 1);
        spath_pop(p, old);
        if (rc < 0) return -1;
    }
    return 0;
}

static int v_additional(spath_t *p, const cJSON *kw, const cJSON *schema, const cJSON *doc,
                        int depth)
{
    if (!cJSON_IsBool(kw)) return bad_keyword(p, "additionalProperties");
    if (cJSON_IsTrue(kw) || !cJSON_IsObject(doc)) return 0;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *member;
    cJSON_ArrayForEach(member, doc)
    {
        if (!props || !cJSON_GetObjectItemCaseSensitive(props, member->string))
            return spath_fail(p, "unexpected property '%s' (additionalProperties is false)",
                              member->string);
    }
    return 0;
}

static int v_items(spath_t *p, const cJSON *kw, const cJSON *schema, const cJSON *doc, int depth)
{
    if (!cJSON_IsObject(kw)) return bad_keyword(p, "items");
    if (!cJSON_IsArray(doc)) return 0;
    const cJSON *el;
    int i = 0;
    cJSON_ArrayForEach(el, doc)
    {
        size_t old = spath_push_index(p, i++);
        int rc = validate_node(p, kw, el, depth + 1);
        spath_pop(p, old);
        if (rc < 0) return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- checker */

static int check_node(spath_t *p, const cJSON *schema, int depth);

static int c_type(spath_t *p, const cJSON *kw, int depth)
{
    if (cJSON_IsString(kw)) {
        if (type_known(kw->valuestring)) return 0;
        return spath_fail(p, "unknown type '%s'", kw->valuestring);
    }
    if (!cJSON_IsArray(kw) || !kw->child)
        return spath_fail(p, "must be a type name or a non-empty array of them");
    const cJSON *one;
    cJSON_ArrayForEach(one, kw)
    {
        if (!cJSON_IsString(one) || !type_known(one->valuestring))
            return spath_fail(p, "holds something that is not a type name");
        for (const cJSON *o = kw->child; o != one; o = o->next)
            if (strcmp(o->valuestring, one->valuestring) == 0)
                return spath_fail(p, "names type '%s' twice", one->valuestring);
    }
    return 0;
}

static int c_any(spath_t *p, const cJSON *kw, int depth)
{
    return 0;
}

static int c_string(spath_t *p, const cJSON *kw, int depth)
{
    return cJSON_IsString(kw) ? 0 : spath_fail(p, "must be a string");
}

static int c_array(spath_t *p, const cJSON *kw, int depth)
{
    return cJSON_IsArray(kw) ? 0 : spath_fail(p, "must be an array");
}

static int c_enum(spath_t *p, const cJSON *kw, int depth)
{
    return cJSON_IsArray(kw) && kw->child ? 0 : spath_fail(p, "must be a non-empty array");
}

static int c_number(spath_t *p, const cJSON *kw, int depth)
{
    return cJSON_IsNumber(kw) ? 0 : spath_fail(p, "must be a number");
}

static int c_length(spath_t *p, const cJSON *kw, int depth)
{
    int64_t n;
    return json_is_int(kw, &n) && n >= 0 ? 0 : spath_fail(p, "must be a non-negative integer");
}

static int c_bool(spath_t *p, const cJSON *kw, int depth)
{
    return cJSON_IsBool(kw) ? 0 : spath_fail(p, "must be a boolean (schemas are not supported)");
}

static int c_pattern(spath_t *p, const cJSON *kw, int depth)
{
    if (!cJSON_IsString(kw)) return spath_fail(p, "must be a string");
    char err[128];
    schema_re_t *re = schema_re_compile(kw->valuestring, err, sizeof(err));
    if (!re) return spath_fail(p, "unsupported pattern: %s", err);
    schema_re_free(re);
    return 0;
}

static int c_format(spath_t *p, const cJSON *kw, int depth)
{
    if (cJSON_IsString(kw) && format_fn(kw->valuestring)) return 0;
    return spath_fail(p, "unknown format (known: uuid, date-time, date)");
}

static int c_required(spath_t *p, const cJSON *kw, int depth)
{
    const cJSON *one;
    if (!cJSON_IsArray(kw)) return spath_fail(p, "must be an array of names");
    cJSON_ArrayForEach(one, kw)
    {
        if (!cJSON_IsString(one)) return spath_fail(p, "must be an array of names");
    }
    return 0;
}

static int c_properties(spath_t *p, const cJSON *kw, int depth)
{
    if (!cJSON_IsObject(kw)) return spath_fail(p, "must be an object of schemas");
    const cJSON *sub;
    cJSON_ArrayForEach(sub, kw)
    {
        size_t old = spath_push(p, sub->string);
        int rc = check_node(p, sub, depth + 1);
        spath_pop(p, old);
        if (rc < 0) return -1;
    }
    return 0;
}

static int c_items(spath_t *p, const cJSON *kw, int depth)
{
    return check_node(p, kw, depth + 1);
}

/* ---------------------------------------------------------- keyword table */

typedef int (*keyword_validate_fn)(spath_t *p, const cJSON *kw, const cJSON *schema,
                                   const cJSON *doc, int depth);
typedef int (*keyword_check_fn)(spath_t *p, const cJSON *kw, int depth);

/* Every supported keyword, in the order a document is checked against them
 * (type first, so later keywords see the type they expect). Keywords with
 * no validate function are annotations. */
static const struct keyword {
    const char *name;
    keyword_check_fn check;
    keyword_validate_fn validate;
} keywords[] = {
    {"type", c_type, v_type},
    {"const", c_any, v_const},
    {"enum", c_enum, v_enum},
    {"minimum", c_number, v_minimum},
    {"maximum", c_number, v_maximum},
    {"minLength", c_length, v_min_length},
    {"maxLength", c_length, v_max_length},
    {"format", c_format, v_format},
    {"pattern", c_pattern, v_pattern},
    {"required", c_required, v_required},
    {"properties", c_properties, v_properties},
    {"additionalProperties", c_bool, v_additional},
    {"items", c_items, v_items},
    {"$schema", c_string, NULL},
    {"$id", c_string, NULL},
    {"title", c_string, NULL},
    {"description", c_string, NULL},
    {"examples", c_array, NULL},
};

#define KEYWORD_COUNT (sizeof(keywords) / sizeof(*keywords))

static int validate_node(spath_t *p, const cJSON *schema, const cJSON *doc, int depth)
{
    if (depth > SCHEMA_MAX_DEPTH)
        return spath_fail(p, "nesting deeper than %d levels", SCHEMA_MAX_DEPTH);
    if (!cJSON_IsObject(schema)) return spath_fail(p, "the schema is not an object");
    for (size_t i = 0; i < KEYWORD_COUNT; i++) {
        if (!keywords[i].validate) continue;
        const cJSON *kw = cJSON_GetObjectItemCaseSensitive(schema, keywords[i].name);
        if (kw && keywords[i].validate(p, kw, schema, doc, depth) < 0) return -1;
    }
    return 0;
}

static int check_node(spath_t *p, const cJSON *schema, int depth)
{
    if (depth > SCHEMA_MAX_DEPTH)
        return spath_fail(p, "nesting deeper than %d levels", SCHEMA_MAX_DEPTH);
    if (!cJSON_IsObject(schema)) return spath_fail(p, "a schema must be an object");
    const cJSON *kw;
    cJSON_ArrayForEach(kw, schema)
    {
        size_t i = 0;
        while (i < KEYWORD_COUNT && strcmp(keywords[i].name, kw->string) != 0)
            i++;
        if (i == KEYWORD_COUNT) return spath_fail(p, "unknown keyword '%s'", kw->string);
        if (cJSON_GetObjectItemCaseSensitive(schema, kw->string) != kw)
            return spath_fail(p, "keyword '%s' given twice", kw->string);
        size_t old = spath_push(p, kw->string);
        int rc = keywords[i].check(p, kw, depth);
        spath_pop(p, old);
        if (rc < 0) return -1;
    }
    return 0;
}

int schema_validate(const cJSON *schema, const cJSON *doc)
{
    spath_t p;
    spath_init(&p, false);
    if (!doc) return spath_fail(&p, "no document");
    return validate_node(&p, schema, doc, 0);
}

int schema_check(const cJSON *schema)
{
    spath_t p;
    spath_init(&p, true);
    return check_node(&p, schema, 0);
}

/* ------------------------------------------------------- compiled schemas */

/*
 * A registry schema is compiled once at load: per node, the keywords it
 * uses in table order, a type mask, the compiled pattern and the compiled
 * children of properties/items with their path segments. Validation then
 * does no keyword lookup, no pattern compile and no formatting on success;
 * failures go through the same v_* functions, so messages are identical.
 */
enum {
    T_STRING = 1 << 0,
    T_INTEGER = 1 << 1,
    T_NUMBER = 1 << 2,
    T_BOOLEAN = 1 << 3,
    T_OBJECT = 1 << 4,
    T_ARRAY = 1 << 5,
    T_NULL = 1 << 6,
};

typedef struct cprop {
    const char *name; /* in the schema tree */
    char *seg;        /* path segment: ".name" or ["name"] */
    size_t seglen;
    cnode_t *node;
} cprop_t;

struct cnode {
    const cJSON *schema;
    size_t nkw;
    struct {
        size_t k; /* index in keywords[] */
        const cJSON *val;
    } kw[KEYWORD_COUNT];
    unsigned types; /* T_* mask of "type", 0 when absent */
    schema_re_t *re;
    cprop_t *props;
    size_t nprops;
    cnode_t *items;
};

static void cnode_free(cnode_t *n)
{
    if (!n) return;
    for (size_t i = 0; i < n->nprops; i++) {
        free(n->props[i].seg);
        cnode_free(n->props[i].node);
    }
    free(n->props);
    cnode_free(n->items);
    schema_re_free(n->re);
    free(n);
}

static unsigned type_bit(const char *t)
{
    for (size_t i = 0; i < sizeof(type_names) / sizeof(*type_names); i++)
        if (strcmp(type_names[i], t) == 0) return 1u << i; /* same order as T_* */
    return 0;
}

static unsigned doc_types(const cJSON *v)
{
    if (cJSON_IsString(v)) return T_STRING;
    if (cJSON_IsNumber(v)) return json_is_int(v, NULL) ? T_INTEGER | T_NUMBER : T_NUMBER;
    if (cJSON_IsBool(v)) return T_BOOLEAN;
    if (cJSON_IsNull(v)) return T_NULL;
    if (cJSON_IsArray(v)) return T_ARRAY;
    if (cJSON_IsObject(v)) return T_OBJECT;
    return 0;
}

static unsigned compile_types(const cJSON *kw)
{
    if (cJSON_IsString(kw)) return type_bit(kw->valuestring);
    unsigned m = 0;
    const cJSON *one;
    cJSON_ArrayForEach(one, kw)
    {
        if (!cJSON_IsString(one)) return 0;
        m |= type_bit(one->valuestring);
    }
    return m;
}

static int compile_props(cnode_t *n, const cJSON *props, int depth)
{
    n->nprops = (size_t)cJSON_GetArraySize(props);
    if (!n->nprops) return 0;
    n->props = calloc(n->nprops, sizeof(*n->props));
    if (!n->props) return diag_set(DIAG_INTERNAL, "out of memory");
    size_t i = 0;
    const cJSON *sub;
    cJSON_ArrayForEach(sub, props)
    {
        cprop_t *cp = &n->props[i++];
        spath_t seg;
        spath_init(&seg, false);
        spath_push(&seg, sub->string);
        cp->name = sub->string;
        cp->seglen = seg.len - 1; /* without the leading "$" */
        cp->seg = strdup(seg.buf + 1);
        if (!cp->seg) return diag_set(DIAG_INTERNAL, "out of memory");
        if (!(cp->node = cnode_compile(sub, depth + 1))) return -1;
    }
    return 0;
}

/* Compile a schema that passed schema_check; NULL with a diag. */
static cnode_t *cnode_compile(const cJSON *schema, int depth)
{
    if (depth > SCHEMA_MAX_DEPTH || !cJSON_IsObject(schema)) {
        diag_set(DIAG_INTERNAL, "schema not checked before compiling");
        return NULL;
    }
    cnode_t *n = calloc(1, sizeof(*n));
    if (!n) {
        diag_set(DIAG_INTERNAL, "out of memory");
        return NULL;
    }
    n->schema = schema;
    for (size_t k = 0; k < KEYWORD_COUNT; k++) {
        if (!keywords[k].validate) continue;
        const cJSON *kw = cJSON_GetObjectItemCaseSensitive(schema, keywords[k].name);
        if (!kw) continue;
        n->kw[n->nkw].k = k;
        n->kw[n->nkw].val = kw;
        n->nkw++;
        int rc = 0;
        if (keywords[k].validate == v_type) {
            n->types = compile_types(kw);
        } else if (keywords[k].validate == v_pattern && cJSON_IsString(kw)) {
            char err[128];
            if (!(n->re = schema_re_compile(kw->valuestring, err, sizeof(err))))
                rc = diag_set(DIAG_INTERNAL, "pattern %s: %s", kw->valuestring, err);
        } else if (keywords[k].validate == v_properties && cJSON_IsObject(kw)) {
            rc = compile_props(n, kw, depth);
        } else if (keywords[k].validate == v_items && cJSON_IsObject(kw)) {
            if (!(n->items = cnode_compile(kw, depth + 1))) rc = -1;
        }
        if (rc < 0) {
            cnode_free(n);
            return NULL;
        }
    }
    return n;
}

static void spath_push_seg(spath_t *p, const cprop_t *cp)
{
    size_t room = sizeof(p->buf) - p->len;
    size_t n = cp->seglen < room ? cp->seglen : room - 1;
    memcpy(p->buf + p->len, cp->seg, n);
    p->buf[p->len + n] = '\0';
    spath_add(p, n);
}

/* Member `name` of object `doc`, searched from *cursor on and wrapping
 * around; a hit moves the cursor past it. For checks where any member of
 * that name will do (required, additionalProperties); documents usually
 * list their members in the schema's order, so a walk of the schema's
 * names costs one comparison each instead of a scan per name. */
static const cJSON *member_from(const cJSON *doc, const char *name, const cJSON **cursor)
{
    const cJSON *start = *cursor ? *cursor : doc->child;
    for (int pass = 0; pass < 2; pass++) {
        const cJSON *end = pass == 0 ? NULL : start;
        for (const cJSON *m = pass == 0 ? start : doc->child; m != end; m = m->next) {
            if (m->string && strcmp(m->string, name) == 0) {
                *cursor = m->next;
                return m;
            }
        }
    }
    return NULL;
}

/* The first member named `name`, exactly as cJSON_GetObjectItemCaseSensitive
 * finds it, for a walk of the schema's property names (distinct) in order.
 * While every member before w->next matched an earlier name, a match at
 * w->next is that name's first member: one comparison. Otherwise a scan;
 * if it finds a member elsewhere, the walk is out of order from then on. */
typedef struct member_walk {
    const cJSON *next;
    bool in_order;
} member_walk_t;

static const cJSON *member_first(const cJSON *doc, const char *name, member_walk_t *w)
{
    if (w->in_order && w->next && w->next->string && strcmp(w->next->string, name) == 0) {
        const cJSON *m = w->next;
        w->next = m->next;
        return m;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, name);
    if (m) w->in_order = false;
    return m;
}

static int cnode_props(spath_t *p, const cnode_t *n, const cJSON *doc, int depth)
{
    if (!cJSON_IsObject(doc)) return 0;
    member_walk_t walk = {doc->child, true};
    for (size_t i = 0; i < n->nprops; i++) {
        const cJSON *member = member_first(doc, n->props[i].name, &walk);
        if (!member) continue;
        size_t old = p->len;
        spath_push_seg(p, &n->props[i]);
        int rc = cnode_validate(p, n->props[i].node, member, depth + 1);
        spath_pop(p, old);
        if (rc < 0) return -1;
    }
    return 0;
}

static int cnode_required(spath_t *p, const cJSON *kw, const cJSON *doc)
{
    if (!cJSON_IsObject(doc)) return 0;
    const cJSON *cursor = NULL, *name;
    cJSON_ArrayForEach(name, kw)
    {
        if (!member_from(doc, name->valuestring, &cursor))
            return spath_fail(p, "missing required property '%s'", name->valuestring);
    }
    return 0;
}

/* additionalProperties false: every member of doc must be a property. */
static int cnode_additional(spath_t *p, const cnode_t *n, const cJSON *doc)
{
    if (!cJSON_IsObject(doc)) return 0;
    size_t at = 0;
    const cJSON *member;
    cJSON_ArrayForEach(member, doc)
    {
        size_t k = 0;
        for (; k < n->nprops; k++) { /* from where the last one was found, wrapping */
            size_t i = (at + k) % n->nprops;
            if (strcmp(n->props[i].name, member->string) == 0) {
                at = i + 1;
                break;
            }
        }
        if (k == n->nprops)
            return spath_fail(p, "unexpected property '%s' (additionalProperties is false)",
                              member->string);
    }
    return 0;
}

static int cnode_items(spath_t *p, const cnode_t *n, const cJSON *doc, int depth)
{
    if (!cJSON_IsArray(doc)) return 0;
    const cJSON *el;
    int i = 0;
    cJSON_ArrayForEach(el, doc)
    {
        size_t old = spath_push_index(p, i++);
        int rc = cnode_validate(p, n->items, el, depth + 1);
        spath_pop(p, old);
        if (rc < 0) return -1;
    }
    return 0;
}

static int cnode_pattern(spath_t *p, const cnode_t *n, const cJSON *kw, const cJSON *doc)
{
    if (!cJSON_IsString(doc)) return 0;
    switch (schema_re_search(n->re, doc->valuestring)) {
    case 1:
        return 0;
    case 0:
        return spath_fail(p, "does not match pattern %s", kw->valuestring);
    case -1:
        return spath_fail(p, "pattern %s needs too many steps", kw->valuestring);
    default:
        return diag_set(DIAG_INTERNAL, "out of memory");
    }
}

static int cnode_validate(spath_t *p, const cnode_t *n, const cJSON *doc, int depth)
{
    if (depth > SCHEMA_MAX_DEPTH)
        return spath_fail(p, "nesting deeper than %d levels", SCHEMA_MAX_DEPTH);
    for (size_t i = 0; i < n->nkw; i++) {
        keyword_validate_fn v = keywords[n->kw[i].k].validate;
        const cJSON *kw = n->kw[i].val;
        int rc;
        if (v == v_type && n->types && (n->types & doc_types(doc)))
            rc = 0;
        else if (v == v_properties && n->props)
            rc = cnode_props(p, n, doc, depth);
        else if (v == v_items && n->items)
            rc = cnode_items(p, n, doc, depth);
        else if (v == v_pattern && n->re)
            rc = cnode_pattern(p, n, kw, doc);
        else if (v == v_required)
            rc = cnode_required(p, kw, doc);
        else if (v == v_additional && cJSON_IsFalse(kw) && n->props)
            rc = cnode_additional(p, n, doc);
        else
            rc = v(p, kw, n->schema, doc, depth);
        if (rc < 0) return -1;
    }
    return 0;
}

/* --------------------------------------------------------------- registry */

typedef struct schema_entry {
    char name[SCHEMA_NAME_MAX];
    int version;
    cJSON *schema;
    cnode_t *compiled;
} schema_entry_t;

struct schema_registry {
    schema_entry_t *items; /* sorted by name, then version */
    size_t n, cap;
};

/* Split "<EventName>.v<N>.json": a name of [A-Za-z][A-Za-z0-9_]* and a
 * version 1..9999 without leading zeros. */
static bool parse_file_name(const char *file, char name[SCHEMA_NAME_MAX], int *version)
{
    size_t len = strlen(file);
    if (len < 5 || strcmp(file + len - 5, ".json") != 0) return false;
    const char *end = file + len - 5, *d = end;
    while (d > file && isdigit((unsigned char)d[-1]))
        d--;
    if (d == end || *d == '0' || end - d > 4 || d - file < 3 || d[-1] != 'v' || d[-2] != '.')
        return false;
    size_t nlen = (size_t)(d - 2 - file);
    if (nlen >= SCHEMA_NAME_MAX || !isalpha((unsigned char)file[0])) return false;
    for (size_t i = 0; i < nlen; i++)
        if (!isalnum((unsigned char)file[i]) && file[i] != '_') return false;
    memcpy(name, file, nlen);
    name[nlen] = '\0';
    int v = 0; /* 1..4 digits, checked above */
    for (const char *q = d; q < end; q++) v = v * 10 + (*q - '0');
    *version = v;
    return true;
}

static char *read_text(const char *path)
{
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_set(DIAG_INTERNAL, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        diag_set(DIAG_INTERNAL, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_size > (off_t)SCHEMA_FILE_MAX) {
        diag_set(DIAG_INTERNAL, "%s: larger than %d bytes", path, SCHEMA_FILE_MAX);
        goto out;
    }
    size_t size = (size_t)st.st_size;
    buf = malloc(size + 1);
    if (!buf || fread(buf, 1, size, f) != size) {
        diag_set(DIAG_INTERNAL, "%s: cannot read", path);
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[size] = '\0';
out:
    fclose(f);
    return buf;
}

/* When the schema pins event_name / event_version with const, they must
 * agree with the file name. */
static int check_envelope(const cJSON *schema, const char *name, int version)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(props, "event_name");
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(props, "event_version");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(en, "const");
    if (c && (!cJSON_IsString(c) || strcmp(c->valuestring, name) != 0))
        return diag_set(DIAG_VALIDATION, "event_name const is not \"%s\"", name);
    c = cJSON_GetObjectItemCaseSensitive(ev, "const");
    int64_t v;
    if (c && (!json_is_int(c, &v) || v != version))
        return diag_set(DIAG_VALIDATION, "event_version const is not %d", version);
    return 0;
}

static int load_one(schema_registry_t *reg, const char *path, const char *name, int version)
{
    int rc = -1;
    cJSON *schema = NULL;
    char *text = read_text(path);
    if (!text) return -1;
    const char *end = NULL;
    schema = cJSON_ParseWithOpts(text, &end, true);
    if (!schema) {
        diag_set(DIAG_VALIDATION, "%s: not valid JSON (at byte %td)", path,
                 end ? end - text : (ptrdiff_t)0);
        goto out;
    }
    if (schema_check(schema) < 0 || check_envelope(schema, name, version) < 0) {
        char msg[sizeof(diag_last()->message)];
        snprintf(msg, sizeof(msg), "%s", diag_last()->message);
        diag_set(DIAG_VALIDATION, "%s: %s", path, msg);
        goto out;
    }
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 16;
        schema_entry_t *items = realloc(reg->items, cap * sizeof(*items));
        if (!items) {
            diag_set(DIAG_INTERNAL, "out of memory");
            goto out;
        }
        reg->items = items;
        reg->cap = cap;
    }
    schema_entry_t *e = &reg->items[reg->n++];
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->version = version;
    e->schema = schema;
    e->compiled = NULL;
    schema = NULL;
    if (!(e->compiled = cnode_compile(e->schema, 0))) {
        char msg[sizeof(diag_last()->message)];
        snprintf(msg, sizeof(msg), "%s", diag_last()->message);
        diag_set(DIAG_INTERNAL, "%s: %s", path, msg);
        goto out; /* the entry stays, the registry free drops it */
    }
    rc = 0;
out:
    cJSON_Delete(schema);
    free(text);
    return rc;
}

static int entry_cmp(const void *a, const void *b)
{
    const schema_entry_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->version > y->version) - (x->version < y->version);
}

int schema_registry_load(schema_registry_t **out, const char *dir)
{
    int rc = -1;
    *out = NULL;
    schema_registry_t *reg = calloc(1, sizeof(*reg));
    if (!reg) return diag_set(DIAG_INTERNAL, "out of memory");
    DIR *d = opendir(dir);
    if (!d) {
        diag_set(DIAG_INTERNAL, "%s: cannot open schema directory: %s", dir, strerror(errno));
        goto out;
    }
    const struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 5, ".json") != 0) continue;
        char path[4096], name[SCHEMA_NAME_MAX];
        int version;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path)) {
            diag_set(DIAG_INTERNAL, "%s/%s: path too long", dir, de->d_name);
            goto out;
        }
        if (!parse_file_name(de->d_name, name, &version)) {
            diag_set(DIAG_VALIDATION, "%s: file name is not <EventName>.v<N>.json", path);
            goto out;
        }
        if (load_one(reg, path, name, version) < 0) goto out;
    }
    if (reg->n) qsort(reg->items, reg->n, sizeof(*reg->items), entry_cmp);
    rc = 0;
out:
    if (d) closedir(d);
    if (rc < 0)
        schema_registry_free(reg);
    else
        *out = reg;
    return rc;
}

void schema_registry_free(schema_registry_t *reg)
{
    if (!reg) return;
    for (size_t i = 0; i < reg->n; i++) {
        cnode_free(reg->items[i].compiled);
        cJSON_Delete(reg->items[i].schema);
    }
    free(reg->items);
    free(reg);
}

static const schema_entry_t *entry_find(const schema_registry_t *reg, const char *name,
                                        int version)
{
    if (!reg || !name) return NULL;
    for (size_t i = 0; i < reg->n; i++)
        if (reg->items[i].version == version && strcmp(reg->items[i].name, name) == 0)
            return &reg->items[i];
    return NULL;
}

const cJSON *schema_find(const schema_registry_t *reg, const char *name, int version)
{
    const schema_entry_t *e = entry_find(reg, name, version);
    return e ? e->schema : NULL;
}

int schema_validate_event(const schema_registry_t *reg, const char *name, int version,
                          const cJSON *doc)
{
    const schema_entry_t *e = entry_find(reg, name, version);
    if (!e || !e->compiled)
        return diag_set(DIAG_NOT_FOUND, "no schema for event %s v%d", name ? name : "(null)",
                        version);
    spath_t p;
    spath_init(&p, false);
    if (!doc) return spath_fail(&p, "no document");
    return cnode_validate(&p, e->compiled, doc, 0);
}

int schema_latest(const schema_registry_t *reg, const char *name)
{
    int best = 0;
    if (!reg || !name) return 0;
    for (size_t i = 0; i < reg->n; i++)
        if (strcmp(reg->items[i].name, name) == 0 && reg->items[i].version > best)
            best = reg->items[i].version;
    return best;
}
