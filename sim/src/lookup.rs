//! The index behind `GET /get-attribution-result`: every user id and advertising id to its
//! latest attribution, so a look-up is a hash probe instead of a scan of every row.
//!
//! Generated rows are not in it: their ids name their user (see
//! [`crate::generate::user_of_id`]), whose few rows are read instead, so ten million rows cost
//! no index.
//!
//! It is built on the first look-up (runs that never look up pay nothing) and then patched by
//! additions: new rows, installs and organic signups. What it cannot patch cheaply (the removal
//! of a row that is someone's latest, a deleted campaign, changed device data) marks it stale,
//! and the next look-up rebuilds it.

use crate::data::Campaign;
use crate::generate::{user_of_ad_id, user_of_id, People};
use crate::install::Install;
use crate::row::Row;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

/// Where an attribution is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// The row with uid `row` of the campaign with uid `campaign`.
    Row { campaign: u64, row: u64 },
    /// An install seen by `init`: through its campaign, or organic.
    Install(Box<str>),
    /// A user's signup on an organic install.
    Signup(Box<str>),
}

/// One attribution of a key: when, and where to read it.
#[derive(Clone, Debug)]
pub(crate) struct Hit {
    pub(crate) at: DateTime<Utc>,
    /// Orders hits of the same millisecond by arrival: a row's uid, the uid a signup drew, 0
    /// for an install (then its id decides, so every build picks the same one).
    seq: u64,
    pub(crate) source: Source,
}

impl Hit {
    fn rank(&self) -> (DateTime<Utc>, u64, &str) {
        match &self.source {
            Source::Row { .. } => (self.at, self.seq, ""),
            Source::Install(iid) | Source::Signup(iid) => (self.at, self.seq, iid),
        }
    }
}

/// The later of two hits.
fn latest(a: Option<Hit>, b: Option<Hit>) -> Option<Hit> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.rank() > a.rank() { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// User ids and advertising ids (lower-cased) to their latest [`Hit`].
#[derive(Default)]
pub(crate) struct Lookup {
    built: bool,
    by_user: HashMap<Box<str>, Hit>,
    by_device: HashMap<Box<str>, Hit>,
    /// Display ids of the campaigns that rows point at, by campaign uid.
    display_ids: HashMap<u64, String>,
    /// Where the generated rows are.
    people: People,
}

type Campaigns = BTreeMap<String, Campaign>;

impl Lookup {
    pub(crate) fn new(people: People) -> Lookup {
        Lookup {
            people,
            ..Lookup::default()
        }
    }

    pub(crate) fn is_built(&self) -> bool {
        self.built
    }

    /// Indexes every row of `campaigns` and every install.
    pub(crate) fn build(&mut self, campaigns: &Campaigns, installs: &HashMap<String, Install>) {
        self.clear();
        self.built = true;
        for c in campaigns.values() {
            self.display_ids.insert(c.uid, c.display_id.clone());
            let owned = c.rows().iter().filter(|r| !r.is_drawn());
            owned.for_each(|r| self.offer_row(c.uid, r));
        }
        for (iid, install) in installs {
            self.offer_install(iid, install, campaigns);
        }
    }

    /// Drops the index; the next look-up rebuilds it.
    pub(crate) fn invalidate(&mut self) {
        if self.built {
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.built = false;
        self.by_user.clear();
        self.by_device.clear();
        self.display_ids.clear();
    }

    /// A row just added to `c`.
    pub(crate) fn add_row(&mut self, c: &Campaign, r: &Row) {
        if self.built {
            let id = || c.display_id.clone();
            self.display_ids.entry(c.uid).or_insert_with(id);
            self.offer_row(c.uid, r);
        }
    }

    /// An install just seen or changed (a first `init`, a link, an organic signup).
    pub(crate) fn add_install(&mut self, iid: &str, install: &Install, campaigns: &Campaigns) {
        if self.built {
            self.offer_install(iid, install, campaigns);
        }
    }

    /// A row just removed: stale if it was the latest of one of its keys.
    pub(crate) fn forget_row(&mut self, r: &Row) {
        if r.is_drawn() {
            // Never indexed: its user's rows are read at each look-up.
            return;
        }
        let is_r = |h: Option<&Hit>| {
            let source = h.map(|h| &h.source);
            matches!(source, Some(Source::Row { row, .. }) if *row == r.uid())
        };
        let latest = r.user_id().is_some_and(|u| is_r(self.by_user.get(&*u)))
            || r.ad_ids()
                .iter()
                .any(|d| is_r(self.by_device.get(d.to_ascii_lowercase().as_str())));
        if latest {
            self.invalidate();
        }
    }

    /// The latest hit of a user id.
    pub(crate) fn user(&self, user_id: &str, campaigns: &Campaigns) -> Option<Hit> {
        let indexed = self.by_user.get(user_id).cloned();
        let has = |r: &Row| r.user_id().as_deref() == Some(user_id);
        let generated = user_of_id(user_id).and_then(|u| self.generated(u, campaigns, has));
        latest(indexed, generated)
    }

    /// The latest hit of a GAID or IDFA, in any letter case.
    pub(crate) fn device(&self, ad_id: &str, campaigns: &Campaigns) -> Option<Hit> {
        let indexed = self
            .by_device
            .get(ad_id.to_ascii_lowercase().as_str())
            .cloned();
        let has = |r: &Row| r.has_device(ad_id);
        let generated = user_of_ad_id(ad_id).and_then(|u| self.generated(u, campaigns, has));
        latest(indexed, generated)
    }

    /// The latest of the generated rows of user `user` that still have the key (`has`).
    fn generated(
        &self,
        user: u64,
        campaigns: &Campaigns,
        has: impl Fn(&Row) -> bool,
    ) -> Option<Hit> {
        let hits = self.people.rows_of(user).filter_map(|(uid, campaign)| {
            let c = campaigns.get(self.display_ids.get(&campaign)?)?;
            let r = c.row(uid).filter(|r| c.uid == campaign && has(r))?;
            Some(Hit {
                at: r.attributed_at(),
                seq: uid,
                source: Source::Row { campaign, row: uid },
            })
        });
        hits.reduce(|a, b| latest(Some(a), Some(b)).expect("both are hits"))
    }

    pub(crate) fn display_id(&self, campaign_uid: u64) -> Option<&str> {
        self.display_ids.get(&campaign_uid).map(String::as_str)
    }

    fn offer_row(&mut self, campaign: u64, r: &Row) {
        let source = Source::Row {
            campaign,
            row: r.uid(),
        };
        let hit = Hit {
            at: r.attributed_at(),
            seq: r.uid(),
            source,
        };
        if let Some(u) = r.user_id() {
            offer(&mut self.by_user, &u, &hit);
        }
        for d in r.ad_ids() {
            offer(&mut self.by_device, &d.to_ascii_lowercase(), &hit);
        }
    }

    /// The install's own attribution from its first `init` (none while its campaign is
    /// deleted), and its organic signups.
    fn offer_install(&mut self, iid: &str, install: &Install, campaigns: &Campaigns) {
        let Some(at) = install.installed_at else {
            return;
        };
        let live = |(uid, id): &(u64, String)| campaigns.get(id).is_some_and(|c| c.uid == *uid);
        if install.campaign.as_ref().is_none_or(live) {
            let hit = Hit {
                at,
                seq: 0,
                source: Source::Install(iid.into()),
            };
            for d in install.ad_ids() {
                offer(&mut self.by_device, &d.to_ascii_lowercase(), &hit);
            }
        }
        for s in &install.organic_signups {
            let hit = Hit {
                at: s.at,
                seq: s.seq,
                source: Source::Signup(iid.into()),
            };
            offer(&mut self.by_user, &s.user_id, &hit);
        }
    }
}

/// Keeps `hit` under `key` unless what is there is as late.
fn offer(map: &mut HashMap<Box<str>, Hit>, key: &str, hit: &Hit) {
    match map.get_mut(key) {
        Some(old) if old.rank() >= hit.rank() => {}
        Some(old) => *old = hit.clone(),
        None => {
            map.insert(key.into(), hit.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn row(uid: u64, ms: i64, user: &str, gaid: &str) -> Row {
        let at = Utc.timestamp_millis_opt(1_780_000_000_000 + ms).unwrap();
        let fields = json!({ "user_data": { "id": user, "device_data": { "gaid": gaid } } });
        Row::new(uid, at, None, fields.as_object().unwrap().clone())
    }

    fn built(rows: Vec<Row>) -> (Lookup, Campaigns) {
        let at = Utc.timestamp_millis_opt(0).unwrap();
        let mut c = Campaign::new(1, "c1".into(), "C".into(), at);
        c.set_rows(rows);
        let campaigns = Campaigns::from([("c1".to_string(), c)]);
        let mut lookup = Lookup::default();
        lookup.build(&campaigns, &HashMap::new());
        (lookup, campaigns)
    }

    fn row_of(hit: Option<Hit>) -> Option<u64> {
        match hit?.source {
            Source::Row { row, .. } => Some(row),
            _ => None,
        }
    }

    #[test]
    fn latest_wins_and_same_instant_goes_to_the_later_row() {
        let rows = vec![
            row(3, 5, "u", "G-1"),
            row(2, 9, "u", "g-2"),
            row(4, 9, "v", "g-2"),
        ];
        let (lookup, cs) = built(rows);
        assert_eq!(row_of(lookup.user("u", &cs)), Some(2));
        assert_eq!(row_of(lookup.device("g-1", &cs)), Some(3));
        assert_eq!(row_of(lookup.device("G-2", &cs)), Some(4));
        assert_eq!(lookup.display_id(1), Some("c1"));
    }

    #[test]
    fn removing_a_latest_row_makes_it_stale_and_an_older_one_does_not() {
        let (mut lookup, campaigns) = built(vec![row(2, 1, "u", "g"), row(3, 2, "u", "g")]);
        let (older, latest) = (campaigns["c1"].row(2), campaigns["c1"].row(3));
        lookup.forget_row(older.unwrap());
        assert!(lookup.is_built());
        lookup.forget_row(latest.unwrap());
        assert!(!lookup.is_built() && lookup.user("u", &campaigns).is_none());
    }
}
