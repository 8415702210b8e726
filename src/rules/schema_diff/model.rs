//! The schema description `tenancy.describe_schema` produces (sql/generator.sql), as Rust types.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Schema {
    #[serde(default)]
    pub sequences: BTreeMap<String, Sequence>,
    #[serde(default)]
    pub tables: BTreeMap<String, Table>,
    #[serde(default)]
    pub views: BTreeMap<String, View>,
    #[serde(default)]
    pub functions: BTreeMap<String, Function>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Sequence {
    #[serde(rename = "type")]
    pub ty: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cache: i64,
    pub cycle: bool,
    pub owned_by: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Table {
    #[serde(default)]
    pub columns: Vec<Column>,
    #[serde(default)]
    pub constraints: BTreeMap<String, Constraint>,
    #[serde(default)]
    pub indexes: BTreeMap<String, String>,
    #[serde(default)]
    pub rls: bool,
    #[serde(default)]
    pub force_rls: bool,
    #[serde(default)]
    pub policies: BTreeMap<String, Policy>,
    #[serde(default)]
    pub triggers: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub not_null: bool,
    pub default: Option<String>,
    pub generated: Option<String>,
    pub identity: Option<String>,
    pub collation: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Constraint {
    #[serde(rename = "type")]
    pub kind: String,
    pub def: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Policy {
    pub cmd: String,
    pub permissive: bool,
    pub using: Option<String>,
    pub check: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct View {
    pub def: String,
    pub materialized: bool,
    #[serde(default)]
    pub depends_on: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Function {
    pub def: String,
    pub kind: String,
}

impl Table {
    pub(super) fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Attribute-tenancy facts the generator needs: template table → tenant column.
pub type TenantColumns = BTreeMap<String, String>;
