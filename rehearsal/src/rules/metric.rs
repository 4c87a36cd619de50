//! CloudWatch datapoints: one per minute, averaged over longer periods, seen late.
//!
//! Sources: Amazon CloudWatch User Guide, "Metrics concepts" (statistics: Average is the sum
//! of the samples divided by their count over the period) and "Using Amazon CloudWatch
//! alarms" (an alarm with a period longer than a minute is still evaluated every minute, on
//! the window that ends at the newest datapoint: a 5-minute period covers minutes 1-5, then
//! 2-6). Detailed monitoring publishes each instance's CPUUtilization every minute; the
//! group's metric (dimension AutoScalingGroupName) averages the samples of its instances.
//! How late a datapoint becomes visible is not documented: it is the named assumption
//! `metric_delay_minutes` (at minute t an alarm sees the datapoints up to minute t - delay).

/// The samples one minute received: CloudWatch's Average over a period is the sum of all
/// samples divided by their count, so a period with more instances weighs more.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MinuteSamples {
    pub sum: f64,
    pub count: f64,
}

impl MinuteSamples {
    /// `count` samples of the same value (identical instances under an even spread).
    pub fn uniform(value: f64, count: f64) -> MinuteSamples {
        MinuteSamples {
            sum: value * count,
            count,
        }
    }
}

/// A metric's minutes since the start of the rehearsal; minutes before it are missing.
#[derive(Debug, Clone, Default)]
pub struct Series {
    minutes: Vec<MinuteSamples>,
}

impl Series {
    pub fn with_capacity(minutes: usize) -> Series {
        Series {
            minutes: Vec::with_capacity(minutes),
        }
    }

    /// Records the next minute.
    pub fn push(&mut self, samples: MinuteSamples) {
        self.minutes.push(samples);
    }

    /// Average of the `period` minutes ending with minute `end` (inclusive), or `None` when
    /// that window received no sample.
    pub fn period_average(&self, end: i64, period: usize) -> Option<f64> {
        let mut total = MinuteSamples::default();
        for minute in (end - period as i64 + 1)..=end {
            if let Some(samples) = usize::try_from(minute)
                .ok()
                .and_then(|m| self.minutes.get(m))
            {
                total.sum += samples.sum;
                total.count += samples.count;
            }
        }
        (total.count > 0.0).then(|| total.sum / total.count)
    }

    /// What an alarm sees at minute `now`: `count` consecutive periods of `period` minutes,
    /// oldest first, the newest ending `delay` minutes before `now` (sliding: it moves by
    /// one minute every minute, whatever the period).
    pub fn evaluation_range(
        &self,
        now: i64,
        delay: i64,
        period: usize,
        count: usize,
    ) -> Vec<Option<f64>> {
        let newest_end = now - delay;
        (0..count)
            .rev()
            .map(|back| self.period_average(newest_end - (back * period) as i64, period))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[Option<f64>]) -> Series {
        let mut s = Series::default();
        for v in values {
            s.push(v.map_or(MinuteSamples::default(), |v| MinuteSamples::uniform(v, 2.0)));
        }
        s
    }

    #[test]
    fn a_datapoint_is_seen_delay_minutes_late() {
        let s = series(&[Some(10.0), Some(20.0), Some(30.0), Some(40.0)]);
        // At minute 4 with a 2-minute delay the newest visible minute is 2.
        assert_eq!(s.evaluation_range(4, 2, 1, 2), vec![Some(20.0), Some(30.0)]);
        // Before the start, everything is missing.
        assert_eq!(s.evaluation_range(1, 2, 1, 2), vec![None, None]);
    }

    #[test]
    fn a_five_minute_period_slides_by_one_minute() {
        let s = series(&[
            Some(0.0),
            Some(10.0),
            Some(20.0),
            Some(30.0),
            Some(40.0),
            Some(50.0),
        ]);
        // Minutes 0-4 then 1-5: the window moves every minute, not every five.
        assert_eq!(s.period_average(4, 5), Some(20.0));
        assert_eq!(s.period_average(5, 5), Some(30.0));
        // Two consecutive 5-minute periods ending at minute 5: 1..=5 and -4..=0.
        assert_eq!(s.evaluation_range(6, 1, 5, 2), vec![Some(0.0), Some(30.0)]);
    }

    #[test]
    fn the_average_weighs_each_sample_and_skips_empty_minutes() {
        let mut s = Series::default();
        s.push(MinuteSamples::uniform(90.0, 1.0));
        s.push(MinuteSamples::default());
        s.push(MinuteSamples::uniform(30.0, 2.0));
        // (90 + 30 + 30) / 3 samples, not the mean of the two minutes' averages.
        assert_eq!(s.period_average(2, 3), Some(50.0));
        assert_eq!(s.period_average(1, 1), None);
    }
}
