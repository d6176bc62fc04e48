//! List: one page of the locks whose names start with a prefix, across
//! every group, in name order.
//!
//! The page size defaults to `default_list_page` and is capped at
//! `max_list_page`; the next page starts after the last name of this one.

use crate::error::ApiError;
use crate::service::errors::internal;
use crate::service::query::{LockRow, ReadAnswer, ReadQuery};
use crate::service::LockService;

#[derive(Clone, Debug, Default)]
pub struct List {
    pub prefix: String,
    /// The previous page's token: its last name.
    pub after: Option<String>,
    pub limit: Option<u32>,
}

/// One page, and the token of the next one (`None`: this is the last).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub locks: Vec<LockRow>,
    pub next_page_token: Option<String>,
}

impl List {
    pub async fn run(self, svc: &LockService) -> Result<Listed, ApiError> {
        svc.admit()?;
        let config = svc.config();
        let limit = (self.limit.unwrap_or(config.default_list_page).clamp(1, config.max_list_page)) as usize;
        let query = ReadQuery::List { prefix: self.prefix, after: self.after, limit: limit + 1 };
        let reads = (0..config.groups).map(|g| svc.read(g, &query));
        let mut locks = Vec::new();
        for result in futures::future::join_all(reads).await {
            match result? {
                (_, ReadAnswer::List(mut page)) => locks.append(&mut page),
                (_, other) => return Err(internal(format!("list answered {other:?}"))),
            }
        }
        locks.sort_by(|a, b| a.name.cmp(&b.name));
        let more = locks.len() > limit;
        locks.truncate(limit);
        let next_page_token = if more { locks.last().map(|l| l.name.clone()) } else { None };
        Ok(Listed { locks, next_page_token })
    }
}
