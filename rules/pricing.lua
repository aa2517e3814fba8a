-- pricing.lua: what a task costs. Called by accounting once per task, the
-- first time it hears of the task (TaskCreated, or a TaskAssigned or
-- TaskCompleted that arrived before it); the price is then fixed for good
-- and recorded with this file's version. Edit and save: new tasks are
-- priced by the new version within a second; a version that fails to load
-- or fails selftest() leaves the old one in force.

-- price(task) -> {assign_fee_cents = N, reward_cents = M}
--   task = {task_id, title, jira_id, description}: title, jira_id and
--   description are nil when the task's TaskCreated has not arrived yet.
--   Whole cents, each from 0 to 100000000000.
-- Default: the assign fee uniform in $10..$20, the reward in $20..$40, in
-- whole dollars (math.random is seeded from ATES_SEED when set).
function price(task)
  return {
    assign_fee_cents = math.random(10, 20) * 100,
    reward_cents = math.random(20, 40) * 100,
  }
end

function selftest()
  local fees, rewards = {}, {}
  for i = 1, 500 do
    local p = price({task_id = "00000000-0000-7000-8000-" .. string.format("%012d", i), title = "x"})
    assert(math.type(p.assign_fee_cents) == "integer", "the fee is whole cents")
    assert(math.type(p.reward_cents) == "integer", "the reward is whole cents")
    assert(p.assign_fee_cents >= 1000 and p.assign_fee_cents <= 2000, "fee in $10..$20")
    assert(p.reward_cents >= 2000 and p.reward_cents <= 4000, "reward in $20..$40")
    assert(p.assign_fee_cents % 100 == 0 and p.reward_cents % 100 == 0, "whole dollars")
    fees[p.assign_fee_cents], rewards[p.reward_cents] = true, true
  end
  assert(fees[1000] and fees[2000] and rewards[2000] and rewards[4000], "the whole ranges are used")
  assert(price({task_id = "t"}).reward_cents, "a task known only by id is priced too")
  return true
end
