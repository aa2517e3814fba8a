/*
 * schema: a JSON Schema subset for event bodies: type (string, integer,
 * number, boolean, object, array, null, or an array of those), properties,
 * required, enum, const, minimum, maximum, minLength, maxLength, pattern
 * (anchors ^ $, literals, ., [classes] with ranges, \d \w \s, and the
 * quantifiers * + ? {n} {n,m}), format ("uuid", "date-time", "date"),
 * items, and additionalProperties (boolean). Unknown keywords are an error
 * at load time, so a schema never silently checks less than it says.
 *
 * A registry holds every "<Name>.v<N>.json" of a directory.
 */
#ifndef ATES_SCHEMA_H
#define ATES_SCHEMA_H

#include <cjson/cJSON.h>

typedef struct schema_registry schema_registry_t;

/* Load every *.json of `dir` named <EventName>.v<N>.json. -1 with a diag
 * naming the file and the problem on a bad schema. */
int schema_registry_load(schema_registry_t **out, const char *dir);
void schema_registry_free(schema_registry_t *reg);

/* The schema of event `name` version `version`, NULL when unknown. */
const cJSON *schema_find(const schema_registry_t *reg, const char *name, int version);
/* Highest known version of `name`, 0 when unknown. */
int schema_latest(const schema_registry_t *reg, const char *name);

/* Check `doc` against `schema`. 0 when valid; -1 with a DIAG_VALIDATION
 * diag whose message names the JSON path and the keyword that failed,
 * e.g. "$.data.task_id: does not match format uuid". */
int schema_validate(const cJSON *schema, const cJSON *doc);
/* Check `doc` against the registry's schema of event `name` v`version`,
 * compiled at load (keywords resolved, patterns compiled once): the fast
 * path for bulk use, with the same results and messages as schema_validate.
 * -1 with DIAG_NOT_FOUND when the registry has no such schema. */
int schema_validate_event(const schema_registry_t *reg, const char *name, int version,
                          const cJSON *doc);
/* Check that a schema only uses supported keywords and well-formed values. */
int schema_check(const cJSON *schema);

#endif
