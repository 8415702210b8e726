//! Storage: thin SPI glue. pg_tenancy's own tables (`registry`; `detached`: the kept ledgers of
//! detached managed-table tenants), PostgreSQL's catalogs (`catalog`), the known migration set
//! (`known_set`), locks taken up front (`locks`), configuration (`settings`), and turning errors
//! into `ereport` (`report`).

pub mod catalog;
pub mod citus;
pub mod detached;
pub mod identity;
pub mod known_set;
pub mod locks;
pub mod registry;
pub mod report;
pub mod settings;
pub mod shared;
pub mod shared_fk;
pub mod snapshot;
pub mod spi;
