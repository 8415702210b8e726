//! The schema description `tenancy.describe_schema` produces (sql/generator.sql), as Rust types.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::rules::sqltext::tenantize;

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
    /// A partitioned table's key (`pg_get_partkeydef`: `RANGE (at)`).
    #[serde(default)]
    pub partition_by: Option<String>,
    /// For a partition: its parent and bound. Its copies of the parent's constraints, indexes
    /// and triggers are not described (they come with the partition).
    #[serde(default)]
    pub partition_of: Option<PartitionOf>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct PartitionOf {
    /// `None` for a table of the described schema itself.
    pub schema: Option<String>,
    pub table: String,
    /// `FOR VALUES …` or `DEFAULT` (`pg_get_expr(relpartbound)`).
    pub bound: String,
}

impl PartitionOf {
    /// The parent as DDL names it: unqualified for the schema's own table.
    pub fn parent_sql(&self) -> String {
        use crate::rules::names::quote_ident as q;
        match &self.schema {
            Some(s) => format!("{}.{}", q(s), q(&self.table)),
            None => q(&self.table),
        }
    }

    /// The parent, when it is a table of the described schema.
    pub fn own_parent(&self) -> Option<&String> {
        self.schema.is_none().then_some(&self.table)
    }
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
    /// The identity sequence's options that differ from the defaults (`INCREMENT BY 5 CACHE 3
    /// CYCLE`, in that order: INCREMENT BY, MINVALUE, MAXVALUE, START WITH, CACHE, CYCLE).
    #[serde(default)]
    pub identity_options: Option<String>,
    pub collation: Option<String>,
}

/// What a constraint is (`pg_constraint.contype`, as a word).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    Primary,
    Unique,
    Check,
    Foreign,
    Exclusion,
}

/// A constraint, structured from `pg_constraint` so nothing re-parses its SQL text.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Constraint {
    pub kind: ConstraintKind,
    /// `pg_get_constraintdef`: replayed as is, except for a foreign key made composite.
    pub def: String,
    /// The constrained columns, in key order (`conkey`).
    pub columns: Vec<String>,
    pub deferrable: bool,
    pub initially_deferred: bool,
    /// False for a constraint added `NOT VALID` and not validated since.
    pub validated: bool,
    /// Present exactly for `ConstraintKind::Foreign`.
    pub foreign_key: Option<ForeignKey>,
}

/// The referencing side of a foreign key: what it references and how.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ForeignKey {
    /// `None` for a table of the described schema itself (printed unqualified, so it resolves
    /// inside each tenant); a shared schema otherwise.
    pub schema: Option<String>,
    pub table: String,
    /// The referenced columns, in key order (`confkey`), pairing with `Constraint::columns`.
    pub columns: Vec<String>,
    #[serde(rename = "match")]
    pub match_type: MatchType,
    pub on_update: FkAction,
    pub on_delete: FkAction,
    /// `ON DELETE SET NULL (a, b)` / `SET DEFAULT (a, b)`: the columns set, when not all.
    pub on_delete_columns: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MatchType {
    Simple,
    Full,
    Partial,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FkAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl MatchType {
    /// The clause as `pg_get_constraintdef` prints it (nothing for the default, SIMPLE).
    pub fn clause(self) -> &'static str {
        match self {
            MatchType::Simple => "",
            MatchType::Full => " MATCH FULL",
            MatchType::Partial => " MATCH PARTIAL",
        }
    }
}

impl FkAction {
    /// The action's SQL, `None` for the default (NO ACTION), which is not printed.
    pub fn sql(self) -> Option<&'static str> {
        match self {
            FkAction::NoAction => None,
            FkAction::Restrict => Some("RESTRICT"),
            FkAction::Cascade => Some("CASCADE"),
            FkAction::SetNull => Some("SET NULL"),
            FkAction::SetDefault => Some("SET DEFAULT"),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Policy {
    pub cmd: String,
    pub permissive: bool,
    pub using: Option<String>,
    pub check: Option<String>,
    /// The roles it applies to, quoted, in name order; empty for PUBLIC.
    #[serde(default)]
    pub roles: Vec<String>,
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

impl Schema {
    /// The schema's own `name` in every printed body and expression becomes `@tenant@`, the way
    /// `sqltext::substitute_tenant` wrote it there (also inside string literals and dollar-quoted
    /// bodies), so a tenant, the template and a scratch build describe alike and the generated DDL
    /// never names the schema it was read from.
    pub fn tenantize(&mut self, name: &str) {
        let t = |s: &mut String| *s = tenantize(s, name);
        let to = |s: &mut Option<String>| {
            if let Some(x) = s {
                *x = tenantize(x, name);
            }
        };
        for table in self.tables.values_mut() {
            for c in &mut table.columns {
                to(&mut c.default);
                to(&mut c.generated);
            }
            table.constraints.values_mut().for_each(|c| t(&mut c.def));
            table.indexes.values_mut().for_each(t);
            table.triggers.values_mut().for_each(t);
            for p in table.policies.values_mut() {
                to(&mut p.using);
                to(&mut p.check);
            }
        }
        self.views.values_mut().for_each(|v| t(&mut v.def));
        self.functions.values_mut().for_each(|f| t(&mut f.def));
    }
}
