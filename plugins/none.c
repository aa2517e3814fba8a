/* Keeps the plugins library non-empty while a build has no plugin sources. */
typedef int ates_plugins_none_t;
