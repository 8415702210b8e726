//! Managed-table templates: `['org_', ':id']` names the tenant schema of a row.
//!
//! Pure: no pgrx. An element `':col'` is the row's column `col` as text (exact column name, case
//! included); `'::x'` is the literal `:x`; anything else is literal.

use crate::rules::error::{Result, SqlState, TenancyError};
use crate::rules::names::quote_literal;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Element {
    Literal(String),
    Column(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub elements: Vec<Element>,
}

fn invalid(message: String) -> TenancyError {
    TenancyError::new(SqlState::InvalidParameterValue, message).hint(
        "A template is a text array of literals and ':column' references with at least one column, e.g. ARRAY['org_', ':id'].",
    )
}

impl Template {
    /// Parses the stored form (SQL `text[]`; NULL elements are refused).
    pub fn parse(raw: &[Option<String>]) -> Result<Template> {
        if raw.is_empty() {
            return Err(invalid("tenant template is empty".into()));
        }
        let mut elements = Vec::with_capacity(raw.len());
        for (i, e) in raw.iter().enumerate() {
            let Some(e) = e else {
                return Err(invalid(format!(
                    "tenant template element {} is NULL",
                    i + 1
                )));
            };
            elements.push(if let Some(lit) = e.strip_prefix("::") {
                Element::Literal(format!(":{lit}"))
            } else if let Some(col) = e.strip_prefix(':') {
                if col.is_empty() {
                    return Err(invalid(format!(
                        "tenant template element {} names no column",
                        i + 1
                    )));
                }
                Element::Column(col.to_string())
            } else {
                Element::Literal(e.clone())
            });
        }
        let t = Template { elements };
        if t.columns().is_empty() {
            return Err(invalid(format!(
                "tenant template {} has no column element, so every row would name the same tenant",
                t.display()
            )));
        }
        Ok(t)
    }

    /// The columns the template reads, in order, without repeats.
    pub fn columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for e in &self.elements {
            if let Element::Column(c) = e {
                if !out.contains(&c.as_str()) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// Computes the tenant name; `value(column)` returns the column as text, or `None` for NULL.
    /// A NULL column is an error naming the column.
    pub fn render(&self, table: &str, value: impl Fn(&str) -> Option<String>) -> Result<String> {
        let mut name = String::new();
        for e in &self.elements {
            match e {
                Element::Literal(l) => name.push_str(l),
                Element::Column(c) => match value(c) {
                    Some(v) => name.push_str(&v),
                    None => {
                        return Err(TenancyError::new(
                            SqlState::NullValueNotAllowed,
                            format!(
                                "column {} of {table} is NULL, so tenant template {} names no tenant",
                                crate::rules::names::quote_ident(c),
                                self.display()
                            ),
                        )
                        .hint("Give the row a value for every column the template uses (a NOT NULL constraint helps)."))
                    }
                },
            }
        }
        Ok(name)
    }

    /// The SQL expression that computes the name from a row of the table, e.g.
    /// `pg_catalog.concat('org_', "id")`: what verify, reconcile and manage_tenant query with.
    /// No cast: `concat()` prints each value with its type's output function, as the trigger does
    /// (`SPI_getvalue`); a cast to text could be the table owner's own function.
    pub fn sql_expr(&self) -> String {
        let parts: Vec<String> = self
            .elements
            .iter()
            .map(|e| match e {
                Element::Literal(l) => quote_literal(l),
                Element::Column(c) => crate::rules::names::quote_ident(c),
            })
            .collect();
        format!("pg_catalog.concat({})", parts.join(", "))
    }

    /// `['org_', ':id']`, for messages.
    pub fn display(&self) -> String {
        let parts: Vec<String> = self
            .elements
            .iter()
            .map(|e| match e {
                Element::Literal(l) if l.starts_with(':') => quote_literal(&format!(":{l}")),
                Element::Literal(l) => quote_literal(l),
                Element::Column(c) => quote_literal(&format!(":{c}")),
            })
            .collect();
        format!("[{}]", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(parts: &[&str]) -> Result<Template> {
        Template::parse(
            &parts
                .iter()
                .map(|p| Some(p.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn parses_literals_and_columns() {
        let tpl = t(&["t_", ":region", "_", ":id", "::x"]).unwrap();
        assert_eq!(
            tpl.elements,
            vec![
                Element::Literal("t_".into()),
                Element::Column("region".into()),
                Element::Literal("_".into()),
                Element::Column("id".into()),
                Element::Literal(":x".into()),
            ]
        );
        assert_eq!(tpl.columns(), vec!["region", "id"]);
        assert_eq!(tpl.display(), "['t_', ':region', '_', ':id', '::x']");
        assert_eq!(
            tpl.sql_expr(),
            r#"pg_catalog.concat('t_', "region", '_', "id", ':x')"#
        );
        assert_eq!(
            t(&["o'", ":we\"ird"]).unwrap().sql_expr(),
            r#"pg_catalog.concat('o''', "we""ird")"#
        );
    }

    #[test]
    fn renders_values_verbatim() {
        let tpl = t(&["org_", ":id"]).unwrap();
        assert_eq!(
            tpl.render("organizations", |_| Some("10".into())).unwrap(),
            "org_10"
        );
        let tpl = t(&[":name"]).unwrap();
        let hostile = "a'\"; drop schema public; --";
        assert_eq!(tpl.render("o", |_| Some(hostile.into())).unwrap(), hostile);
    }

    #[test]
    fn null_column_is_an_error_naming_it() {
        let tpl = t(&["org_", ":id"]).unwrap();
        let e = tpl.render("organizations", |_| None).unwrap_err();
        assert_eq!(e.state, SqlState::NullValueNotAllowed);
        assert!(
            e.message.contains("\"id\"") && e.message.contains("organizations"),
            "{}",
            e.message
        );
        assert!(e.hint.is_some());
    }

    #[test]
    fn refuses_empty_columnless_and_null_templates() {
        assert!(t(&[]).is_err());
        let e = t(&["org_", "x"]).unwrap_err();
        assert!(
            e.message.contains("no column") && e.hint.is_some(),
            "{}",
            e.message
        );
        assert!(t(&["org_", ":"]).is_err());
        assert!(Template::parse(&[Some(":id".into()), None]).is_err());
        assert!(t(&["::id"]).is_err(), "'::id' is a literal, so no column");
    }
}
