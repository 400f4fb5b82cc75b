//! One campaign day's numbers. Sign-ups are the campaign's attributed-user rows of that project
//! day, so the Reporting API agrees with `GET /attributed-users`; the rest is drawn from a seeded
//! hash of the campaign and the day, so a re-read gives the same numbers until a row or the
//! revision changes. A day without sign-ups is all zeros.

use super::query::View;
use crate::hash::mix;
use chrono::{Datelike, NaiveDate};

const DAY: u64 = 0x2E_9021;

/// One view's numbers over some days. In the retargeting view `installs` are reinstalls;
/// money is in cents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Funnel {
    pub(super) clicks: u64,
    pub(super) installs: u64,
    /// Retargeting only.
    pub(super) reengagements: u64,
    pub(super) signups: u64,
    pub(super) uninstalls: u64,
    pub(super) suspicious: u64,
    /// Of `installs + reengagements`, those after an ad view rather than a click.
    pub(super) view_through: u64,
    pub(super) spend: u64,
    pub(super) revenue: u64,
}

impl Funnel {
    pub(super) fn plus(self, o: Funnel) -> Funnel {
        Funnel {
            clicks: self.clicks + o.clicks,
            installs: self.installs + o.installs,
            reengagements: self.reengagements + o.reengagements,
            signups: self.signups + o.signups,
            uninstalls: self.uninstalls + o.uninstalls,
            suspicious: self.suspicious + o.suspicious,
            view_through: self.view_through + o.view_through,
            spend: self.spend + o.spend,
            revenue: self.revenue + o.revenue,
        }
    }

    /// Every number times `part / whole`, rounded down, so shares never add up to more than
    /// the whole.
    pub(super) fn share(self, part: u64, whole: u64) -> Funnel {
        let f = |x: u64| match whole {
            0 => 0,
            _ => (u128::from(x) * u128::from(part) / u128::from(whole)) as u64,
        };
        Funnel {
            clicks: f(self.clicks),
            installs: f(self.installs),
            reengagements: f(self.reengagements),
            signups: f(self.signups),
            uninstalls: f(self.uninstalls),
            suspicious: f(self.suspicious),
            view_through: f(self.view_through),
            spend: f(self.spend),
            revenue: f(self.revenue),
        }
    }

    /// The installs and re-engagements that sign-ups convert from.
    pub(super) fn converted_from(&self) -> u64 {
        self.installs + self.reengagements
    }
}

/// What a day's numbers are drawn from, besides its sign-ups.
pub(super) struct DayKey {
    pub(super) seed: u64,
    pub(super) campaign: u64,
    pub(super) day: NaiveDate,
    /// Each revision adds one late install (or reinstall), and its spend, to every day with
    /// sign-ups.
    pub(super) revision: u64,
    /// Runs on an ad network, so it has spend and view-through installs.
    pub(super) paid: bool,
}

impl DayKey {
    /// The day's numbers in `view` with `signups` attributed-user rows (none: all zeros).
    pub(super) fn funnel(&self, view: View, signups: u64) -> Funnel {
        if signups == 0 {
            return Funnel::default();
        }
        let day = u64::from(self.day.num_days_from_ce().unsigned_abs());
        let h = mix(mix(mix(self.seed ^ DAY) ^ self.campaign) ^ day);
        let pick = |salt: u64, n: u64| mix(h ^ salt) % n;
        match view {
            View::UserAcquisition => self.acquisition(signups, pick),
            View::Retargeting => self.retargeting(signups, pick),
        }
    }

    /// Installs 0–40% (plus up to 2) above the sign-ups, clicks 20–200% above the installs,
    /// $0.40–$3.00 per install on a paid campaign, $0–$4.99 revenue per sign-up.
    fn acquisition(&self, s: u64, pick: impl Fn(u64, u64) -> u64) -> Funnel {
        let installs = s + s * pick(1, 41) / 100 + pick(2, 3) + self.revision;
        self.costed(Funnel {
            clicks: installs + installs * (20 + pick(3, 181)) / 100,
            installs,
            signups: s,
            uninstalls: installs * pick(4, 15) / 100,
            suspicious: installs * pick(5, 4) / 100,
            view_through: installs * pick(6, 20) / 100,
            spend: installs * (40 + pick(7, 261)),
            revenue: s * pick(8, 500),
            ..Funnel::default()
        })
    }

    /// Reinstalls and re-engagements a fraction of the day's sign-ups; of them 10–59% sign up
    /// again.
    fn retargeting(&self, s: u64, pick: impl Fn(u64, u64) -> u64) -> Funnel {
        let installs = s * pick(11, 30) / 100 + pick(12, 2) + self.revision;
        let reengagements = s * pick(13, 60) / 100 + pick(14, 3);
        let won = installs + reengagements;
        self.costed(Funnel {
            clicks: won * (2 + pick(15, 4)),
            installs,
            reengagements,
            signups: won * (10 + pick(16, 50)) / 100,
            uninstalls: installs * pick(17, 20) / 100,
            suspicious: won * pick(18, 3) / 100,
            view_through: won * pick(19, 20) / 100,
            spend: won * (10 + pick(20, 91)),
            revenue: won * pick(21, 300),
        })
    }

    /// Only ad networks cost money and show ads to view.
    fn costed(&self, f: Funnel) -> Funnel {
        match self.paid {
            true => f,
            false => Funnel {
                spend: 0,
                view_through: 0,
                ..f
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(day: u32, revision: u64) -> DayKey {
        let day = NaiveDate::from_ymd_opt(2026, 5, day).unwrap();
        let (seed, campaign, paid) = (7, 3, true);
        DayKey {
            seed,
            campaign,
            day,
            revision,
            paid,
        }
    }

    #[test]
    fn each_step_of_the_funnel_is_at_least_the_next() {
        for (day, s) in (1..29).zip([1, 2, 5, 40, 900].into_iter().cycle()) {
            let f = key(day, 0).funnel(View::UserAcquisition, s);
            assert_eq!(f.signups, s);
            assert!(f.clicks >= f.installs && f.installs >= s, "{f:?}");
            assert!(f.uninstalls <= f.installs && f.view_through <= f.installs);
            let r = key(day, 0).funnel(View::Retargeting, s);
            assert!(r.signups <= r.converted_from() && r.clicks >= r.converted_from());
        }
        assert_eq!(key(1, 0).funnel(View::Retargeting, 0), Funnel::default());
    }

    #[test]
    fn a_revision_adds_late_installs_and_their_spend() {
        let (before, after) = (key(9, 0), key(9, 1));
        let (a, b) = (
            before.funnel(View::UserAcquisition, 4),
            after.funnel(View::UserAcquisition, 4),
        );
        assert_eq!((b.installs, b.signups), (a.installs + 1, a.signups));
        assert!(b.spend > a.spend);
        let unpaid = DayKey {
            paid: false,
            ..key(9, 0)
        };
        assert_eq!(unpaid.funnel(View::UserAcquisition, 4).spend, 0);
    }

    #[test]
    fn shares_round_down() {
        let f = key(3, 0).funnel(View::UserAcquisition, 10);
        let parts = [f.share(3, 10), f.share(3, 10), f.share(4, 10)];
        let sum = parts.iter().fold(Funnel::default(), |a, p| a.plus(*p));
        assert_eq!(sum.signups, 10);
        assert!(sum.installs <= f.installs && sum.spend <= f.spend);
        assert_eq!(f.share(1, 0), Funnel::default());
    }
}
