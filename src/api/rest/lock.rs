//! Lock calls: acquire, release, refresh, describe, list, validate-fence.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::Reply;
use super::{key, parse, Header, RawBody, Svc};
use crate::server::ops::Acquire;
use crate::server::read::{LockRow, LockView};

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
        session: b.session_id.map(|id| (id, true)),
    };
    let params = asked.params(svc.config());
    let size = params.size;
    let (meta, g) = svc.acquire(params).await?;
    Ok(Json(GrantReply {
        header: meta.into(),
        key: g.key.to_string(),
        fencing_token: g.token,
        permits: g.permits,
        ttl_ms: g.ttl_ms,
        size,
    }))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    pub name: String,
    pub key: String,
}

pub async fn release(State(svc): Svc, RawBody(body): RawBody) -> Reply<Header> {
    let b: KeyBody = parse(&body)?;
    Ok(Json(svc.release(b.name, key(b.key)?).await?.into()))
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
    let (meta, g) = svc.refresh(b.name, key(b.key)?, b.ttl_ms).await?;
    Ok(Json(RefreshReply { header: meta.into(), fencing_token: g.token, ttl_ms: g.ttl_ms }))
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
    let (meta, lock) = svc.describe(b.name).await?;
    Ok(Json(DescribeReply { header: meta.into(), lock }))
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
    let limit = b.limit.unwrap_or(svc.config().default_list_page) as usize;
    let (locks, more) = svc.list(b.prefix.unwrap_or_default(), b.page_token, limit).await?;
    let next_page_token = if more { locks.last().map(|l| l.name.clone()) } else { None };
    Ok(Json(ListReply { locks, next_page_token }))
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
    let (meta, holder) = svc.validate_fence(b.name, b.fencing_token).await?;
    Ok(Json(FenceReply { header: meta.into(), valid: holder.is_some(), key: holder.map(|k| k.to_string()) }))
}
