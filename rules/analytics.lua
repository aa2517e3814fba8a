-- analytics.lua: what the admin's analytics count as management earnings,
-- where weeks and months begin, and which completed task is "most expensive".
-- Called by the analytics service (GET /api/analytics/*).
-- Edit and save: the new version is in force within a second; a version that
-- fails to load or fails selftest() leaves the old one in force.
--
-- Days are "YYYY-MM-DD" business days (ATES_TZ); money is integer cents.

-- management_earnings(totals) -> integer cents
--   totals = {day, debits_cents, credits_cents, payouts_cents, completed_tasks}
--   (the sums of the ledger entries booked on that day, and how many tasks
--   were completed that day)
-- Default: what the popugs paid in assign fees minus what they were paid in
-- rewards (the same figure as accounting's management earnings).
-- Called for every day an answer shows, so a change applies at once.
function management_earnings(totals)
  return totals.debits_cents - totals.credits_cents
end

-- Calendar arithmetic on day numbers (days since 1970-01-01), without time
-- zones: H. Hinnant's days_from_civil / civil_from_days.
local function day_number(day)
  local y, m, d = string.match(day, "^(%d%d%d%d)-(%d%d)-(%d%d)$")
  assert(y, "not a day: " .. tostring(day))
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function day_string(n)
  n = n + 719468
  local era = (n >= 0 and n or n - 146096) // 146097
  local doe = n - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return string.format("%04d-%02d-%02d", y, m, d)
end

-- first_day_of_week(day) -> day
--   The first day of the week that holds `day` (a day on or before it, at
--   most 365 days earlier; every day of a week must give the same answer).
-- Default: weeks begin on Monday.
local FIRST_WEEKDAY = 1 -- 0 Sunday, 1 Monday, ... 6 Saturday
function first_day_of_week(day)
  local n = day_number(day)
  local weekday = (n + 4) % 7 -- 1970-01-01 was a Thursday (4)
  return day_string(n - (weekday - FIRST_WEEKDAY) % 7)
end

-- first_day_of_month(day) -> day
--   The first day of the month that holds `day` (same conditions as weeks).
-- Default: calendar months.
function first_day_of_month(day)
  return string.sub(day, 1, 8) .. "01"
end

-- expense_key(task) -> integer, or array of up to 4 integers, or nil
--   task = {id, title, jira_id, reward_cents, completed_at, completed_ms, day}
--   (reward_cents is nil until accounting has priced the task; title and
--   jira_id are nil until its TaskCreated has arrived; completed_ms is
--   completed_at in milliseconds since the epoch)
-- The most expensive task of a period is the one with the greatest key
-- (arrays compare element by element); equal keys go to the smaller task id;
-- nil leaves the task out. The service stores each task's key and indexes
-- it, so a period's answer is a lookup; after a change of this function it
-- recomputes every key (about half a minute for a million tasks).
-- Default: the highest reward; among equal rewards the earliest completion;
-- tasks not yet priced do not count.
function expense_key(task)
  if task.reward_cents == nil then return nil end
  return {task.reward_cents, -task.completed_ms}
end

function selftest()
  local t = {debits_cents = 3000, credits_cents = 4500, payouts_cents = 100, completed_tasks = 2}
  assert(management_earnings(t) == -1500, "earnings are debits minus credits")

  assert(day_string(day_number("2024-02-29")) == "2024-02-29", "day numbers round-trip")
  assert(day_number("1970-01-01") == 0 and day_number("2000-03-01") == 11017, "day numbers")
  assert(first_day_of_week("2026-11-24") == "2026-11-23", "a Tuesday's week begins on Monday")
  assert(first_day_of_week("2026-11-23") == "2026-11-23", "a Monday begins its own week")
  assert(first_day_of_week("2026-11-29") == "2026-11-23", "a Sunday ends the week")
  assert(first_day_of_week("2027-01-01") == "2026-12-28", "weeks cross years")
  assert(first_day_of_month("2024-02-29") == "2024-02-01", "months")
  assert(first_day_of_month("2026-12-01") == "2026-12-01", "a first day begins its own month")

  local cheap = {reward_cents = 2000, completed_ms = 1000}
  local dear = {reward_cents = 4000, completed_ms = 5000}
  local dear_earlier = {reward_cents = 4000, completed_ms = 3000}
  local function greater(a, b)
    for i = 1, math.max(#a, #b) do
      local x, y = a[i] or math.mininteger, b[i] or math.mininteger
      if x ~= y then return x > y end
    end
    return false
  end
  assert(greater(expense_key(dear), expense_key(cheap)), "a higher reward is more expensive")
  assert(greater(expense_key(dear_earlier), expense_key(dear)), "a tie goes to the earlier completion")
  assert(expense_key({completed_ms = 1}) == nil, "an unpriced task does not count")
  return true
end
