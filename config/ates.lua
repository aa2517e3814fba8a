-- aTES configuration. Returns a table; every ATES_* environment variable
-- overrides the matching key (see README). Only os.getenv is available here.
return {
  http_addr   = "127.0.0.1:8080",         -- ATES_HTTP_ADDR
  nats_url    = "nats://127.0.0.1:4222",  -- ATES_NATS_URL (comma-separated for a cluster)
  data_dir    = "./data",                 -- ATES_DATA_DIR: SQLite files, keys, mail spool
  rules_dir   = "./rules",                -- ATES_RULES_DIR: hot-reloaded Lua rules
  web_dir     = "./web",                  -- ATES_WEB_DIR: dashboards
  schemas_dir = "./config/schemas",       -- ATES_SCHEMAS_DIR: event schemas
  access_ttl  = 300,                      -- ATES_ACCESS_TTL: access token lifetime, seconds
  tz          = "UTC",                    -- ATES_TZ: time zone of the business day
  day_close   = "00:00",                  -- ATES_DAY_CLOSE: local time the business day closes
  log         = "info",                   -- ATES_LOG: error, warn, info, debug
  ops_roles   = "admin",                  -- ATES_OPS_ROLES: who may read GET /api/rules
  -- admin_email = "admin@uberpopug.inc", -- ATES_ADMIN_EMAIL
  -- seed = 42,                           -- ATES_SEED: repeatable random choices
  -- smtp_url = "smtp://127.0.0.1:25",    -- ATES_SMTP_URL: unset spools mail to DATA/mail
  -- mail_from = "aTES <noreply@uberpopug.inc>", -- ATES_MAIL_FROM: From of every mail
  -- notify_mail = true,                  -- ATES_NOTIFY_MAIL: notify also mails each notice
}
