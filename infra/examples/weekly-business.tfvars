# A weekly calendar of capacity for a business application used from Paris:
#   ./apply.sh perf1 -var-file=infra/examples/weekly-business.tfvars   (or terraform apply -var-file=...)
#
# Tiers (instances; the scaling policies still move the group between min and max):
#   ultra-low  min 1, max 2   all day Tuesday and Sunday
#   low        min 1, max 3   21:00-06:00 on the other days
#   normal     min 2, max 4   06:00-21:00 on the other days (Saturday included)
#   peak       min 4, max 8   07:00-09:00 and 13:00-15:00 on business days (Mon, Wed, Thu, Fri;
#                             Tuesday is ultra-low all day, which wins)
#
# How recurring scheduled actions compose: an action does nothing but set the group's sizes
# at the moment its cron expression fires; there is no "end" and no "between". So the
# calendar is written as its transitions, one action per change of tier, and the tier in force
# at any time is the one set by the last action that fired. Every transition of the week must
# be covered, or the previous tier silently lasts longer:
#
#   Mon 00:00 low (after Sunday)       Tue 00:00 ultra-low            Wed 00:00 low (after Tuesday)
#   Mon,Wed-Sat 06:00 normal           Mon,Wed-Fri 06:50 peak         Mon,Wed-Fri 09:00 normal
#   Mon,Wed-Fri 12:50 peak             Mon,Wed-Fri 15:00 normal       Mon,Wed-Sat 21:00 low
#   Sun 00:00 ultra-low
#
# Peaks start ten minutes early: raising min_size launches instances at once, and they need a
# few minutes to boot, pass the health check and warm up before the rush at 07:00 and 13:00.
# desired_capacity is left at -1 (unchanged): raising min pulls the capacity up, lowering max
# pulls it down, and in between the scaling policies keep control. Lowering min at the end of
# a peak does not remove instances by itself; the scale-in alarm does, gradually, once CPU
# allows.
#
# Cron fields: minute hour day-of-month month day-of-week (0 = Sunday). time_zone makes the
# hours local, daylight saving time included. After `terraform apply`, min_size and max_size
# are back to the values below until the next action fires: apply them as the normal tier.

min_size = 2
max_size = 4

schedules = {
  "ultra-low-tuesday-sunday" = {
    recurrence = "0 0 * * 0,2"
    time_zone  = "Europe/Paris"
    min_size   = 1
    max_size   = 2
  }
  "low-after-ultra-low" = {
    recurrence = "0 0 * * 1,3"
    time_zone  = "Europe/Paris"
    min_size   = 1
    max_size   = 3
  }
  "normal-morning" = {
    recurrence = "0 6 * * 1,3-6"
    time_zone  = "Europe/Paris"
    min_size   = 2
    max_size   = 4
  }
  "peak-start" = {
    recurrence = "50 6,12 * * 1,3-5"
    time_zone  = "Europe/Paris"
    min_size   = 4
    max_size   = 8
  }
  "peak-end" = {
    recurrence = "0 9,15 * * 1,3-5"
    time_zone  = "Europe/Paris"
    min_size   = 2
    max_size   = 4
  }
  "low-evening" = {
    recurrence = "0 21 * * 1,3-6"
    time_zone  = "Europe/Paris"
    min_size   = 1
    max_size   = 3
  }
}
