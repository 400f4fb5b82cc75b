//! What the simulated project owns: its link domains and store listings, and which of its
//! campaigns a link names.

use url::Url;

/// Link domains of the simulated project; the first one is its primary domain.
pub(crate) const PROJECT_DOMAINS: [&str; 2] = ["go.example.org", "links.example.com"];

/// Store listings of the simulated project: (id, name, platform).
pub(crate) const LISTINGS: [(&str, &str, &str); 4] = [
    ("ios-main", "App Store – main", "IOS"),
    ("play-main", "Play Store – main", "ANDROID"),
    ("play-promo", "Play Store – promo", "ANDROID"),
    ("ios-beta", "App Store – beta", "IOS"),
];

/// Listing indexes for ids; `Err` carries the unknown ids.
pub(crate) fn listing_indexes<S: AsRef<str>>(ids: &[S]) -> Result<Vec<usize>, Vec<String>> {
    let found: Vec<Option<usize>> = ids
        .iter()
        .map(|id| LISTINGS.iter().position(|l| l.0 == id.as_ref()))
        .collect();
    let unknown: Vec<String> = ids
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(id, _)| id.as_ref().to_string())
        .collect();
    if unknown.is_empty() {
        Ok(found.into_iter().flatten().collect())
    } else {
        Err(unknown)
    }
}

/// The display id a campaign link names: its `c` parameter or its single path segment, on a
/// project domain. The scheme may be left out.
pub(crate) fn link_display_id(link: &str) -> Option<String> {
    let url = Url::parse(link)
        .or_else(|_| Url::parse(&format!("https://{link}")))
        .ok()?;
    if !PROJECT_DOMAINS.contains(&url.host_str()?) {
        return None;
    }
    if let Some((_, c)) = url.query_pairs().find(|(k, _)| k == "c") {
        return Some(c.into_owned()).filter(|c| !c.is_empty());
    }
    match url
        .path_segments()?
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()[..]
    {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_listing_ids_are_reported() {
        assert_eq!(listing_indexes(&["play-main", "ios-beta"]), Ok(vec![1, 3]));
        assert_eq!(listing_indexes(&["nope"]), Err(vec!["nope".to_string()]));
    }

    #[test]
    fn links_name_their_campaign() {
        let id = |l: &str| link_display_id(l);
        assert_eq!(
            id("https://go.example.org/?c=Ab-12x&utm_source=x"),
            Some("Ab-12x".into())
        );
        assert_eq!(id("https://go.example.org?c=Ab12x"), Some("Ab12x".into()));
        assert_eq!(id("https://links.example.com/Ab12x"), Some("Ab12x".into()));
        assert_eq!(id("go.example.org/Ab12x"), Some("Ab12x".into()));
        assert_eq!(id("https://evil.example.net/?c=Ab12x"), None);
        assert_eq!(id("https://go.example.org/a/b"), None);
    }
}
