# Sourced by tools/bench.sh with $hp (ates port), $tmp, rate(), ratio(), $health, $raw_http.
# Login is slow by design (Argon2id, 64 MiB per hash); an authorized GET
# should run near /health thanks to the verified-token cache.
login_body='{"email":"admin@uberpopug.inc","password":"bench-password"}'
cat >"$tmp/login.lua" <<LUA
wrk.method = "POST"
wrk.body = '$login_body'
wrk.headers["Content-Type"] = "application/json"
LUA
login=$(wrk -t2 -c4 -d"${secs}s" -s "$tmp/login.lua" "http://127.0.0.1:$hp/api/auth/login" 2>/dev/null |
  awk '/Requests\/sec/ {print $2}')
echo "auth_login ${login} req/s (wrk -t2 -c4; Argon2id interactive)"
token=$(curl -s -X POST -H 'Content-Type: application/json' -d "$login_body" \
  "http://127.0.0.1:$hp/api/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
me=$(rate -H "Authorization: Bearer $token" "http://127.0.0.1:$hp/api/auth/me")
echo "auth_me ${me} req/s (authorized GET, wrk -t2 -c64; $(ratio "$me" "$health") of /health, $(ratio "$me" "$raw_http") of raw)"
