-- payout.lua: what closing a business day pays each account, and the mail
-- that tells the account. Called by accounting at every close (the daily
-- job at ATES_DAY_CLOSE, POST /api/accounting/close-day, ates close-day),
-- once per account whose balance at the end of the day is not zero.
-- Edit and save: the next close uses the new version; a version that fails
-- to load or fails selftest() leaves the old one in force.

-- payout(balance_cents) -> {pay_cents = P, carry_cents = C}
--   P is paid out (a payout entry, the balance goes down by P, one mail);
--   C stays on the account. P + C must equal the balance, P >= 0, and P is
--   never more than a positive balance (a debt is never "paid out").
-- Default: pay a positive balance in full, carry a negative one.
function payout(balance_cents)
  if balance_cents > 0 then
    return {pay_cents = balance_cents, carry_cents = 0}
  end
  return {pay_cents = 0, carry_cents = balance_cents}
end

-- "$1,234.56" from cents (also for negative amounts: "-$5.00").
local function money(cents)
  local sign = cents < 0 and "-" or ""
  cents = math.abs(cents)
  local dollars = tostring(cents // 100):reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  return string.format("%s$%s.%02d", sign, dollars, cents % 100)
end

-- mail(p) -> {subject = S, text = T}
--   p = {account_id, email, name (nil when unknown), day, amount_cents
--   (paid), balance_cents (after the payout)}. S: one line, no CR/LF.
function mail(p)
  local who = p.name or p.email
  return {
    subject = string.format("aTES: %s paid out for %s", money(p.amount_cents), p.day),
    text = string.format(
      "Hello %s,\n\n" ..
      "your earnings of the business day %s, %s, have been paid out.\n" ..
      "Your balance is now %s.\n\n" ..
      "The full log of the day is on the accounting dashboard.\n\n" ..
      "-- \naTES, UberPopug Inc\n",
      who, p.day, money(p.amount_cents), money(p.balance_cents)),
  }
end

function selftest()
  local p = payout(12345)
  assert(p.pay_cents == 12345 and p.carry_cents == 0, "a positive balance is paid in full")
  p = payout(-500)
  assert(p.pay_cents == 0 and p.carry_cents == -500, "a negative balance carries over")
  p = payout(0)
  assert(p.pay_cents == 0 and p.carry_cents == 0, "nothing to pay on zero")
  assert(money(123456789) == "$1,234,567.89", "money: " .. money(123456789))
  assert(money(-500) == "-$5.00" and money(7) == "$0.07", "money of small and negative amounts")
  local m = mail({account_id = "a", email = "kiwi@uberpopug.inc", day = "2026-11-24",
                  amount_cents = 4200, balance_cents = 0})
  assert(m.subject == "aTES: $42.00 paid out for 2026-11-24", "subject: " .. m.subject)
  assert(not m.subject:find("[\r\n]"), "one-line subject")
  assert(m.text:find("kiwi@uberpopug.inc", 1, true), "the text greets the account")
  return true
end
