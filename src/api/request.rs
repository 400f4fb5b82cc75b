//! The requests the client makes, each with how its answer is read.

use url::Url;

use crate::api::budget::{Hold, MemoryBudget};
use crate::api::reporting::{self, PageLimits, ReportPage};
use crate::api::{attribution, ApiError, Page};
use crate::model::lookup::Answer;

/// Largest body a page may have. A thousand rows of the documented shape weigh about 2 MB;
/// richer rows are read in smaller pages (the scanner halves its page size when a page is
/// refused), so only a single row this large, or a hostile server, is ever refused.
pub const MAX_PAGE_BYTES: usize = 16 << 20;

/// A request, and how its answer is read from a 200 or a 204.
pub(super) trait Request {
    type Answer;
    fn url(&self) -> &Url;
    /// The sync's own reads go first; the rest take only the slots no read waits for.
    fn urgent(&self) -> bool {
        false
    }
    /// What the body draws on while it is held, if anything.
    fn budget(&self) -> Option<&MemoryBudget> {
        None
    }
    fn no_content(&self) -> Self::Answer;
    fn read(&self, body: &[u8], hold: Hold) -> Result<Self::Answer, ApiError>;
    /// Whether a passing fault (429, 5xx, a lost connection) is asked again here; else every
    /// attempt is the caller's to pace.
    fn retried(&self) -> bool {
        true
    }
    /// The most bytes the body may have: more is refused as it arrives.
    fn max_body(&self) -> usize {
        MAX_PAGE_BYTES
    }
}

/// One page to fetch.
pub(super) struct PageRequest<'a> {
    pub url: Url,
    /// The key of the list in `data`.
    pub list_key: &'a str,
    /// Rows asked for: a page with more is refused.
    pub limit: u32,
    pub budget: Option<&'a MemoryBudget>,
}

impl Request for PageRequest<'_> {
    type Answer = Page;

    fn url(&self) -> &Url {
        &self.url
    }

    fn urgent(&self) -> bool {
        true
    }

    fn budget(&self) -> Option<&MemoryBudget> {
        self.budget
    }

    /// The contract's defensive reading: 204 is a page with no rows.
    fn no_content(&self) -> Page {
        Page::default()
    }

    fn read(&self, body: &[u8], hold: Hold) -> Result<Page, ApiError> {
        Page::parse(body, self.list_key, self.limit as usize).map(|page| Page { hold, ..page })
    }
}

/// One attribution look-up.
pub(super) struct AttributionRequest {
    pub url: Url,
}

impl Request for AttributionRequest {
    type Answer = Answer;

    fn url(&self) -> &Url {
        &self.url
    }

    /// 204: Linkrunner knows nothing of the id.
    fn no_content(&self) -> Answer {
        Answer::NotFound
    }

    fn read(&self, body: &[u8], _hold: Hold) -> Result<Answer, ApiError> {
        attribution::parse(body)
    }
}

/// One page of the Reporting API's campaign table.
pub(super) struct ReportingRequest {
    pub url: Url,
    pub limits: PageLimits,
}

impl Request for ReportingRequest {
    type Answer = ReportPage;

    fn url(&self) -> &Url {
        &self.url
    }

    fn no_content(&self) -> ReportPage {
        ReportPage::default()
    }

    fn read(&self, body: &[u8], _hold: Hold) -> Result<ReportPage, ApiError> {
        reporting::parse(body, &self.limits)
    }

    fn max_body(&self) -> usize {
        self.limits.bytes
    }

    /// Each attempt spends one of the Reporting API's few requests a minute, so the reporting
    /// pace decides when to ask again, apart from the sync's reads.
    fn retried(&self) -> bool {
        false
    }
}
