-- shuffle.lua: who may be given tasks, and who gets each one.
-- Called by the tracker on task creation and on every shuffle press.
-- Edit and save: the new version is in force within a second; a version
-- that fails to load or fails selftest() leaves the old one in force.

-- eligible(account) -> boolean
--   account = {id, email, name, role, active}
-- Default: every active account that is not an admin or a manager.
function eligible(account)
  return account.active == true and account.role ~= "admin" and account.role ~= "manager"
end

-- pick(task, candidates) -> one of candidates
--   task = {id, title, jira_id, assignee_id}  (assignee_id: the current one, nil on creation)
--   candidates = array of the ids of the eligible accounts (never empty), in id
--                order; one shuffle passes the same table for every task: read
--                it, do not change it
-- Default: uniformly at random (math.random is seeded from ATES_SEED when set).
function pick(task, candidates)
  return candidates[math.random(#candidates)]
end

function selftest()
  assert(eligible({active = true, role = "popug"}), "an active popug is eligible")
  assert(eligible({active = true, role = "accountant"}), "an active accountant is eligible")
  assert(not eligible({active = true, role = "admin"}), "admins are not eligible")
  assert(not eligible({active = true, role = "manager"}), "managers are not eligible")
  assert(not eligible({active = false, role = "popug"}), "inactive accounts are not eligible")
  local candidates, seen = {"a", "b", "c"}, {}
  for _ = 1, 200 do
    local p = pick({id = "t", title = "x"}, candidates)
    assert(p == "a" or p == "b" or p == "c", "pick returns a candidate")
    seen[p] = true
  end
  assert(seen.a and seen.b and seen.c, "pick spreads tasks over the candidates")
  return true
end
