//! CPU credits of a burstable instance (T3, T3a, T4g) in unlimited mode, and what they are
//! charged.
//!
//! Sources: Amazon EC2 User Guide, "Key concepts for burstable performance instances" (one
//! CPU credit is one vCPU at 100 % for one minute; an instance earns credits at its
//! baseline and accrues at most what it earns in 24 hours) and "Unlimited mode concepts":
//! an instance spends its earned balance first, then *surplus* credits; credits earned
//! below the baseline pay the surplus down first; surplus beyond what the instance can
//! earn in 24 hours is charged at the end of the hour, and what is left when the instance
//! is stopped or terminated is charged then. T3 and T4g instances get no launch credits: a
//! new instance starts with an empty balance. How full the balance of the instances
//! running before the rehearsal is, AWS cannot know: the named assumption
//! `initial_credit_fraction`.

/// The credit terms of an instance type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CreditTerms {
    pub vcpus: f64,
    /// Baseline utilisation per vCPU, as a fraction (0.10 for a t3.micro).
    pub baseline: f64,
}

impl CreditTerms {
    /// Credits earned in a minute of running.
    pub fn earned_per_minute(&self) -> f64 {
        self.vcpus * self.baseline
    }

    /// The most credits an instance earns in 24 hours: the cap of the earned balance and the
    /// surplus it may carry without charge (288 for a t3.micro).
    pub fn day_of_credits(&self) -> f64 {
        self.earned_per_minute() * 24.0 * 60.0
    }
}

/// One instance's credits, in credits (vCPU-minutes).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CreditAccount {
    /// Earned credits not spent yet.
    pub balance: f64,
    /// Surplus credits spent and not paid down yet.
    pub surplus: f64,
    /// Surplus credits charged so far.
    pub charged: f64,
}

impl CreditAccount {
    /// An account with `fraction` of a full balance.
    pub fn with_balance(terms: &CreditTerms, fraction: f64) -> CreditAccount {
        CreditAccount {
            balance: terms.day_of_credits() * fraction.clamp(0.0, 1.0),
            ..CreditAccount::default()
        }
    }

    /// A stretch of running: `running_secs` of billed time during which the instance used
    /// `busy_vcpu_secs` of CPU.
    pub fn run(&mut self, terms: &CreditTerms, running_secs: f64, busy_vcpu_secs: f64) {
        let earned = terms.earned_per_minute() * running_secs / 60.0;
        let spent = busy_vcpu_secs / 60.0;
        if spent >= earned {
            let need = spent - earned;
            let from_balance = need.min(self.balance);
            self.balance -= from_balance;
            self.surplus += need - from_balance;
        } else {
            let spare = earned - spent;
            let repaid = spare.min(self.surplus);
            self.surplus -= repaid;
            self.balance = (self.balance + spare - repaid).min(terms.day_of_credits());
        }
    }

    /// The end of a clock hour: surplus beyond a day's earnings is charged.
    pub fn hour_ends(&mut self, terms: &CreditTerms) {
        let excess = self.surplus - terms.day_of_credits();
        if excess > 0.0 {
            self.charged += excess;
            self.surplus -= excess;
        }
    }

    /// The instance terminates: the surplus left is charged.
    pub fn terminate(&mut self) {
        self.charged += self.surplus;
        self.surplus = 0.0;
    }
}

/// Dollars for `credits` surplus credits at a price per vCPU-hour.
pub fn charge_usd(credits: f64, usd_per_vcpu_hour: f64) -> f64 {
    credits / 60.0 * usd_per_vcpu_hour
}

#[cfg(test)]
mod tests {
    use super::*;

    const MICRO: CreditTerms = CreditTerms {
        vcpus: 2.0,
        baseline: 0.10,
    };

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_t3_micro_earns_twelve_credits_an_hour_and_keeps_a_day_of_them() {
        assert!(close(MICRO.earned_per_minute() * 60.0, 12.0));
        assert!(close(MICRO.day_of_credits(), 288.0));
    }

    #[test]
    fn spending_takes_the_balance_first_then_surplus_which_earnings_pay_down() {
        // (starting balance, starting surplus, minutes, CPU % of both vCPUs,
        //  expected balance, surplus)
        let cases = [
            // 50 % for an hour spends 60 credits, earns 12: 48 from the balance.
            (100.0, 0.0, 60.0, 50.0, 52.0, 0.0),
            // An empty balance: the 48 become surplus.
            (0.0, 0.0, 60.0, 50.0, 0.0, 48.0),
            // Idle for an hour earns 12: it pays 12 of the 48 down.
            (0.0, 48.0, 60.0, 0.0, 0.0, 36.0),
            // Idle with nothing owed: the balance grows, capped at 288.
            (280.0, 0.0, 60.0, 0.0, 288.0, 0.0),
            // At the baseline (10 %) nothing changes.
            (50.0, 5.0, 60.0, 10.0, 50.0, 5.0),
        ];
        for (balance, surplus, minutes, cpu, want_balance, want_surplus) in cases {
            let mut account = CreditAccount {
                balance,
                surplus,
                charged: 0.0,
            };
            let secs = minutes * 60.0;
            account.run(&MICRO, secs, MICRO.vcpus * cpu / 100.0 * secs);
            assert!(
                close(account.balance, want_balance) && close(account.surplus, want_surplus),
                "{balance}/{surplus} at {cpu} %: {account:?}"
            );
            assert_eq!(account.charged, 0.0, "nothing is charged while running");
        }
    }

    #[test]
    fn surplus_is_charged_beyond_a_day_of_earnings_or_at_termination() {
        let mut account = CreditAccount {
            balance: 0.0,
            surplus: 300.0,
            charged: 0.0,
        };
        account.hour_ends(&MICRO);
        assert!(
            close(account.charged, 12.0) && close(account.surplus, 288.0),
            "{account:?}"
        );
        account.terminate();
        assert!(close(account.charged, 300.0) && account.surplus == 0.0);
        // 60 credits are one vCPU-hour: $0.05 on a T3.
        assert!(close(charge_usd(60.0, 0.05), 0.05));
    }

    #[test]
    fn a_short_burst_is_repaid_rather_than_charged() {
        // Half an hour at 100 % from an empty balance (a new instance), then idle: the
        // surplus (60 - 6 = 54 credits) is repaid in 4.5 hours, nothing is charged.
        let mut account = CreditAccount::default();
        account.run(&MICRO, 1800.0, MICRO.vcpus * 1800.0);
        assert!(close(account.surplus, 54.0));
        for _ in 0..5 {
            account.run(&MICRO, 3600.0, 0.0);
            account.hour_ends(&MICRO);
        }
        assert!(
            account.surplus == 0.0 && account.charged == 0.0,
            "{account:?}"
        );
    }
}
