//! Lock calls: acquire, release, refresh, set-value, downgrade, describe,
//! list, validate-fence.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::Reply;
use super::{key, parse, Header, RawBody, Svc};
use crate::lock::{Mode, Value};
use crate::service::ops::acquire::{Acquire, InSession};
use crate::service::ops::describe::Describe;
use crate::service::ops::downgrade::Downgrade;
use crate::service::ops::list::List;
use crate::service::ops::refresh::Refresh;
use crate::service::ops::release::Release;
use crate::service::ops::set_value::SetValue;
use crate::service::ops::validate_fence::ValidateFence;
use crate::service::query::{LockRow, LockView};

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AcquireBody {
    pub name: String,
    pub size: Option<u32>,
    pub permits: Option<u32>,
    pub ttl_ms: Option<u64>,
    pub wait_ms: Option<u64>,
    pub key: Option<String>,
    pub session_id: Option<u64>,
    /// `exclusive` (the default) or `shared`.
    pub mode: Option<Mode>,
    /// A string (or an array of byte values).
    pub value: Option<Value>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct GrantReply {
    #[serde(flatten)]
    pub header: Header,
    pub key: String,
    pub fencing_token: u64,
    pub permits: u32,
    pub ttl_ms: u64,
    pub size: u32,
    pub mode: Mode,
    pub value: Option<Value>,
}

pub async fn acquire(State(svc): Svc, RawBody(body): RawBody) -> Reply<GrantReply> {
    let b: AcquireBody = parse(&body)?;
    let asked = Acquire {
        name: b.name,
        key: b.key.map(key).transpose()?,
        size: b.size,
        permits: b.permits,
        ttl_ms: b.ttl_ms,
        wait_ms: b.wait_ms,
        mode: b.mode,
        value: b.value,
        session: b.session_id.map(|id| InSession { id, keep_alive: true }),
    };
    let granted = asked.run(&svc).await?;
    let g = granted.grant;
    Ok(Json(GrantReply {
        header: granted.meta.into(),
        key: g.key.to_string(),
        fencing_token: g.token,
        permits: g.permits,
        ttl_ms: g.ttl_ms,
        size: granted.size,
        mode: g.mode,
        value: g.value,
    }))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SetValueBody {
    pub name: String,
    pub key: String,
    /// The new value; absent (or null) clears it.
    pub value: Option<Value>,
}

/// A hold after a set-value or a downgrade.
#[derive(Serialize, Deserialize)]
pub struct HoldReply {
    #[serde(flatten)]
    pub header: Header,
    pub fencing_token: u64,
    pub mode: Mode,
    pub value: Option<Value>,
}

pub async fn set_value(State(svc): Svc, RawBody(body): RawBody) -> Reply<HoldReply> {
    let b: SetValueBody = parse(&body)?;
    let done = SetValue { name: b.name, key: key(b.key)?, value: b.value }.run(&svc).await?;
    let g = done.grant;
    Ok(Json(HoldReply { header: done.meta.into(), fencing_token: g.token, mode: g.mode, value: g.value }))
}

pub async fn downgrade(State(svc): Svc, RawBody(body): RawBody) -> Reply<HoldReply> {
    let b: KeyBody = parse(&body)?;
    let done = Downgrade { name: b.name, key: key(b.key)? }.run(&svc).await?;
    let g = done.grant;
    Ok(Json(HoldReply { header: done.meta.into(), fencing_token: g.token, mode: g.mode, value: g.value }))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    pub name: String,
    pub key: String,
}

pub async fn release(State(svc): Svc, RawBody(body): RawBody) -> Reply<Header> {
    let b: KeyBody = parse(&body)?;
    Ok(Json(Release { name: b.name, key: key(b.key)? }.run(&svc).await?.meta.into()))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub name: String,
    pub key: String,
    pub ttl_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
pub struct RefreshReply {
    #[serde(flatten)]
    pub header: Header,
    pub fencing_token: u64,
    pub ttl_ms: u64,
}

pub async fn refresh(State(svc): Svc, RawBody(body): RawBody) -> Reply<RefreshReply> {
    let b: RefreshBody = parse(&body)?;
    let refreshed = Refresh { name: b.name, key: key(b.key)?, ttl_ms: b.ttl_ms }.run(&svc).await?;
    let g = refreshed.grant;
    Ok(Json(RefreshReply { header: refreshed.meta.into(), fencing_token: g.token, ttl_ms: g.ttl_ms }))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct DescribeReply {
    #[serde(flatten)]
    pub header: Header,
    pub lock: Option<LockView>,
}

pub async fn describe(State(svc): Svc, RawBody(body): RawBody) -> Reply<DescribeReply> {
    let b: NameBody = parse(&body)?;
    let described = Describe { name: b.name }.run(&svc).await?;
    Ok(Json(DescribeReply { header: described.meta.into(), lock: described.lock }))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListBody {
    pub prefix: Option<String>,
    pub limit: Option<u32>,
    pub page_token: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct ListReply {
    pub locks: Vec<LockRow>,
    pub next_page_token: Option<String>,
}

pub async fn list(State(svc): Svc, RawBody(body): RawBody) -> Reply<ListReply> {
    let b: ListBody = parse(&body)?;
    let list = List { prefix: b.prefix.unwrap_or_default(), after: b.page_token, limit: b.limit };
    let listed = list.run(&svc).await?;
    Ok(Json(ListReply { locks: listed.locks, next_page_token: listed.next_page_token }))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FenceBody {
    pub name: String,
    pub fencing_token: u64,
}

#[derive(Serialize, Deserialize)]
pub struct FenceReply {
    #[serde(flatten)]
    pub header: Header,
    pub valid: bool,
    pub key: Option<String>,
}

pub async fn validate_fence(State(svc): Svc, RawBody(body): RawBody) -> Reply<FenceReply> {
    let b: FenceBody = parse(&body)?;
    let fence = ValidateFence { name: b.name, token: b.fencing_token }.run(&svc).await?;
    let key = fence.holder.map(|k| k.to_string());
    Ok(Json(FenceReply { header: fence.meta.into(), valid: key.is_some(), key }))
}
