/*
 * registry: the services linked into this binary. The test host adds the
 * probe plugin of tests/integration (compiled with ATES_TEST_PLUGIN).
 */
#include "core/plugin.h"

extern const plugin_t auth_plugin;
extern const plugin_t tracker_plugin;
extern const plugin_t accounting_plugin;
extern const plugin_t notify_plugin;
extern const plugin_t analytics_plugin;
#ifdef ATES_TEST_PLUGIN
extern const plugin_t probe_plugin;
#endif

const plugin_t *const ates_plugins[] = {
    &auth_plugin,
    &tracker_plugin,
    &accounting_plugin,
    &notify_plugin,
    &analytics_plugin,
#ifdef ATES_TEST_PLUGIN
    &probe_plugin,
#endif
    NULL,
};
