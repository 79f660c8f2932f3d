//! Turns parsed `filter`/`order` expressions into SQL over a type's declared fields.
//!
//! Each GraphQL list type declares which names a filter or an ordering may use and the SQL
//! expression and value kind behind each name (the original's `_queryfilter_fieldspec` and
//! `_queryorder_colmap`). Values are converted to the field's kind here, so a wrong value gets
//! an error naming the field, and are bound as parameters with an explicit cast.
//!
//! Enum values are bound as text and converted in a scalar subquery (`(SELECT $1::text::
//! sessionstatus)`, `ARRAY(SELECT unnest($1::text[])::sessionstatus)`): text-to-enum is a stable I/O conversion that PostgreSQL would otherwise
//! redo for every row scanned; as a subquery it runs once per statement and still serves as
//! an index condition.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use uuid::Uuid;

use super::MinilangError;
use super::filter::{Combine, CompareOp, FilterExpr, Literal};
use super::order::OrderKey;
use crate::queries::listing::SqlParams;

/// A PostgreSQL enum a field compares with.
#[derive(Debug)]
pub struct EnumSpec {
    /// The PostgreSQL type name, e.g. `sessionstatus`.
    pub pg_type: &'static str,
    /// The labels stored in the database.
    pub labels: &'static [&'static str],
    /// The Python enum member names, one per label, when they differ from the labels (enums
    /// stored by value, such as `userstatus`: `BEFORE_VERIFICATION` is `before-verification`).
    /// The original's filters take member names; we accept both.
    pub names: &'static [&'static str],
    /// Also accept a name written in lower case (the original's `enum_field_getter`).
    pub accept_lowercase: bool,
}

impl EnumSpec {
    /// The stored label for a label or member name given by a client.
    pub fn label_of(&self, value: &str) -> Option<&'static str> {
        let upper = value.to_uppercase();
        self.labels.iter().enumerate().find_map(|(i, label)| {
            let name = self.names.get(i).copied().unwrap_or(label);
            let matches = *label == value
                || name == value
                || (self.accept_lowercase && (name == upper || *label == upper));
            matches.then_some(*label)
        })
    }
}

/// What a field holds, which decides the literals it accepts and how they are bound.
#[derive(Debug, Clone, Copy)]
pub enum FieldKind {
    Text,
    Int,
    Float,
    Bool,
    Uuid,
    DateTime,
    Enum(&'static EnumSpec),
    /// A `varchar[]` column: a comparison holds if it holds for any item.
    TextArray,
}

/// A name a filter may use.
#[derive(Debug, Clone, Copy)]
pub struct FilterField {
    pub name: &'static str,
    /// A static SQL expression over the statement's table aliases.
    pub sql: &'static str,
    pub kind: FieldKind,
}

/// A name an ordering may use.
#[derive(Debug, Clone, Copy)]
pub struct OrderField {
    pub name: &'static str,
    pub sql: &'static str,
}

/// Compiles a filter into a SQL boolean expression, binding its values into `params`.
pub fn compile_filter(
    expr: &FilterExpr,
    fields: &[FilterField],
    params: &mut SqlParams,
) -> Result<String, MinilangError> {
    match expr {
        FilterExpr::Not(inner) => Ok(format!("NOT ({})", compile_filter(inner, fields, params)?)),
        FilterExpr::Combine(left, op, right) => {
            let left = compile_filter(left, fields, params)?;
            let right = compile_filter(right, fields, params)?;
            let joiner = match op {
                Combine::And => "AND",
                Combine::Or => "OR",
            };
            Ok(format!("({left}) {joiner} ({right})"))
        }
        FilterExpr::Compare { field, op, value } => {
            let spec = fields.iter().find(|f| f.name == field).ok_or_else(|| {
                MinilangError::UnknownField {
                    field: field.clone(),
                    context: "filter",
                    known: fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", "),
                }
            })?;
            compile_compare(spec, *op, value, params)
        }
    }
}

/// Compiles an ordering into `ORDER BY` terms (without the keywords).
pub fn compile_order(keys: &[OrderKey], fields: &[OrderField]) -> Result<String, MinilangError> {
    let mut terms = Vec::with_capacity(keys.len());
    for key in keys {
        let spec = fields.iter().find(|f| f.name == key.field).ok_or_else(|| {
            MinilangError::UnknownField {
                field: key.field.clone(),
                context: "order",
                known: fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", "),
            }
        })?;
        terms.push(format!("{} {}", spec.sql, key.direction.sql()));
    }
    Ok(terms.join(", "))
}

fn bad_value(field: &FilterField, reason: impl Into<String>) -> MinilangError {
    MinilangError::BadValue {
        field: field.name.to_owned(),
        reason: reason.into(),
    }
}

fn compile_compare(
    field: &FilterField,
    op: CompareOp,
    value: &Literal,
    params: &mut SqlParams,
) -> Result<String, MinilangError> {
    if let FieldKind::TextArray = field.kind {
        let item = FilterField {
            name: field.name,
            sql: "item",
            kind: FieldKind::Text,
        };
        let condition = compile_compare(&item, op, value, params)?;
        return Ok(format!(
            "EXISTS (SELECT 1 FROM unnest({}) AS item WHERE {condition})",
            field.sql
        ));
    }
    let column = field.sql;
    match (op, value) {
        (CompareOp::Eq | CompareOp::Is, Literal::Null) => return Ok(format!("{column} IS NULL")),
        (CompareOp::Ne | CompareOp::IsNot, Literal::Null) => {
            return Ok(format!("{column} IS NOT NULL"));
        }
        (_, Literal::Null) => {
            return Err(bad_value(
                field,
                format!(
                    "null can only be compared with ==, !=, is or isnot, not {}",
                    op.as_str()
                ),
            ));
        }
        (CompareOp::Is | CompareOp::IsNot, Literal::Bool(b)) => {
            let not = if op == CompareOp::IsNot { " NOT" } else { "" };
            return Ok(format!("{column} IS{not} {b}"));
        }
        (CompareOp::Is | CompareOp::IsNot, other) => {
            return Err(bad_value(
                field,
                format!(
                    "{} takes null, true or false, not {}",
                    op.as_str(),
                    other.kind()
                ),
            ));
        }
        _ => {}
    }
    match op {
        CompareOp::In => {
            let Literal::Array(items) = value else {
                return Err(bad_value(
                    field,
                    format!("in takes an array, not {}", value.kind()),
                ));
            };
            let placeholder = bind_array(field, items, params)?;
            Ok(format!("{column} = ANY({placeholder})"))
        }
        CompareOp::Contains | CompareOp::Like | CompareOp::ILike => {
            let Literal::String(text) = value else {
                return Err(bad_value(
                    field,
                    format!("{} takes a string, not {}", op.as_str(), value.kind()),
                ));
            };
            let column_text = match field.kind {
                FieldKind::Text => column.to_owned(),
                FieldKind::Uuid | FieldKind::Enum(_) => format!("{column}::text"),
                _ => {
                    return Err(bad_value(
                        field,
                        format!("{} only applies to text fields", op.as_str()),
                    ));
                }
            };
            let placeholder = params.push(text.clone());
            Ok(match op {
                CompareOp::Contains => {
                    format!("{column_text} LIKE '%' || {placeholder}::text || '%'")
                }
                CompareOp::Like => format!("{column_text} LIKE {placeholder}::text"),
                _ => format!("{column_text} ILIKE {placeholder}::text"),
            })
        }
        CompareOp::Eq
        | CompareOp::Ne
        | CompareOp::Gt
        | CompareOp::Ge
        | CompareOp::Lt
        | CompareOp::Le => {
            if let Literal::Array(_) = value {
                return Err(bad_value(
                    field,
                    format!("{} takes a single value, not an array", op.as_str()),
                ));
            }
            let placeholder = bind_scalar(field, value, params)?;
            let sql_op = match op {
                CompareOp::Eq => "=",
                CompareOp::Ne => "<>",
                CompareOp::Gt => ">",
                CompareOp::Ge => ">=",
                CompareOp::Lt => "<",
                _ => "<=",
            };
            Ok(format!("{column} {sql_op} {placeholder}"))
        }
        CompareOp::Is | CompareOp::IsNot => unreachable_is(field),
    }
}

fn unreachable_is(field: &FilterField) -> Result<String, MinilangError> {
    Err(bad_value(field, "is/isnot take null, true or false"))
}

/// Binds one literal as the field's kind; returns the cast placeholder.
fn bind_scalar(
    field: &FilterField,
    value: &Literal,
    params: &mut SqlParams,
) -> Result<String, MinilangError> {
    let mismatch =
        |expected: &str| bad_value(field, format!("expected {expected}, got {}", value.kind()));
    Ok(match (field.kind, value) {
        (FieldKind::Text, Literal::String(s)) => format!("{}::text", params.push(s.clone())),
        (FieldKind::Text, _) => return Err(mismatch("a string")),
        (FieldKind::Int, Literal::Int(i)) => format!("{}::int8", params.push(*i)),
        (FieldKind::Int | FieldKind::Float, Literal::Float(f)) => {
            format!("{}::float8", params.push(*f))
        }
        (FieldKind::Float, Literal::Int(i)) => format!("{}::float8", params.push(*i as f64)),
        (FieldKind::Int | FieldKind::Float, _) => return Err(mismatch("a number")),
        (FieldKind::Bool, Literal::Bool(b)) => format!("{}::bool", params.push(*b)),
        (FieldKind::Bool, _) => return Err(mismatch("true or false")),
        (FieldKind::Uuid, Literal::String(s)) => {
            let id =
                Uuid::parse_str(s).map_err(|_| bad_value(field, format!("{s:?} is not a UUID")))?;
            format!("{}::uuid", params.push(id))
        }
        (FieldKind::Uuid, _) => return Err(mismatch("a UUID string")),
        (FieldKind::DateTime, Literal::String(s)) => {
            let at = parse_datetime(s).ok_or_else(|| {
                bad_value(field, format!("{s:?} is not a date/time (use ISO 8601)"))
            })?;
            format!("{}::timestamptz", params.push(at))
        }
        (FieldKind::DateTime, _) => return Err(mismatch("a date/time string")),
        (FieldKind::Enum(spec), Literal::String(s)) => {
            let label = spec.label_of(s).ok_or_else(|| {
                bad_value(
                    field,
                    format!("expected one of {}; got {s:?}", spec.labels.join(", ")),
                )
            })?;
            format!(
                "(SELECT {}::text::{})",
                params.push(label.to_owned()),
                spec.pg_type
            )
        }
        (FieldKind::Enum(_), _) => return Err(mismatch("a string")),
        (FieldKind::TextArray, _) => return Err(mismatch("a string")),
    })
}

/// Binds an array literal for `= ANY(...)`; returns the cast placeholder.
fn bind_array(
    field: &FilterField,
    items: &[Literal],
    params: &mut SqlParams,
) -> Result<String, MinilangError> {
    let each = |check: &dyn Fn(&Literal) -> bool, expected: &str| -> Result<(), MinilangError> {
        match items.iter().find(|item| !check(item)) {
            Some(item) => Err(bad_value(
                field,
                format!("in: expected an array of {expected}, got {}", item.kind()),
            )),
            None => Ok(()),
        }
    };
    Ok(match field.kind {
        FieldKind::Text | FieldKind::TextArray => {
            each(&|l| matches!(l, Literal::String(_)), "strings")?;
            let values: Vec<String> = items.iter().filter_map(as_string).collect();
            format!("{}::text[]", params.push(values))
        }
        FieldKind::Int => {
            each(&|l| matches!(l, Literal::Int(_)), "integers")?;
            let values: Vec<i64> = items
                .iter()
                .filter_map(|l| match l {
                    Literal::Int(i) => Some(*i),
                    _ => None,
                })
                .collect();
            format!("{}::int8[]", params.push(values))
        }
        FieldKind::Float => {
            each(
                &|l| matches!(l, Literal::Int(_) | Literal::Float(_)),
                "numbers",
            )?;
            let values: Vec<f64> = items
                .iter()
                .filter_map(|l| match l {
                    Literal::Int(i) => Some(*i as f64),
                    Literal::Float(f) => Some(*f),
                    _ => None,
                })
                .collect();
            format!("{}::float8[]", params.push(values))
        }
        FieldKind::Bool => {
            each(&|l| matches!(l, Literal::Bool(_)), "booleans")?;
            let values: Vec<bool> = items
                .iter()
                .filter_map(|l| match l {
                    Literal::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect();
            format!("{}::bool[]", params.push(values))
        }
        FieldKind::Uuid => {
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                let parsed = as_string(item).and_then(|s| Uuid::parse_str(&s).ok());
                values.push(parsed.ok_or_else(|| {
                    bad_value(field, format!("in: {item:?} is not a UUID string"))
                })?);
            }
            format!("{}::uuid[]", params.push(values))
        }
        FieldKind::DateTime => {
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                let parsed = as_string(item).and_then(|s| parse_datetime(&s));
                values.push(parsed.ok_or_else(|| {
                    bad_value(field, format!("in: {item:?} is not a date/time string"))
                })?);
            }
            format!("{}::timestamptz[]", params.push(values))
        }
        FieldKind::Enum(spec) => {
            let mut labels = Vec::with_capacity(items.len());
            for item in items {
                let label = as_string(item)
                    .and_then(|s| spec.label_of(&s))
                    .ok_or_else(|| {
                        bad_value(
                            field,
                            format!(
                                "in: expected labels among {}; got {item:?}",
                                spec.labels.join(", ")
                            ),
                        )
                    })?;
                labels.push(label.to_owned());
            }
            format!(
                "ARRAY(SELECT unnest({}::text[])::{})",
                params.push(labels),
                spec.pg_type
            )
        }
    })
}

fn as_string(literal: &Literal) -> Option<String> {
    match literal {
        Literal::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Parses the date/time forms the original's `dateutil.parser.parse` is used with: ISO 8601
/// with or without an offset (a missing offset means UTC), with `T` or a space, or a date.
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(at) = DateTime::parse_from_str(text, format) {
            return Some(at.with_timezone(&Utc));
        }
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minilang::filter::parse_filter;
    use crate::minilang::order::parse_order;

    static STATUS: EnumSpec = EnumSpec {
        pg_type: "sessionstatus",
        labels: &["PENDING", "RUNNING", "TERMINATED"],
        names: &[],
        accept_lowercase: true,
    };

    #[test]
    fn enums_by_value_accept_member_names() {
        static USER_STATUS: EnumSpec = EnumSpec {
            pg_type: "userstatus",
            labels: &["active", "before-verification"],
            names: &["ACTIVE", "BEFORE_VERIFICATION"],
            accept_lowercase: false,
        };
        assert_eq!(
            USER_STATUS.label_of("BEFORE_VERIFICATION"),
            Some("before-verification")
        );
        assert_eq!(USER_STATUS.label_of("active"), Some("active"));
        assert_eq!(USER_STATUS.label_of("Active"), None);
        assert_eq!(STATUS.label_of("running"), Some("RUNNING"));
    }

    const FIELDS: &[FilterField] = &[
        FilterField {
            name: "name",
            sql: "s.name",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "status",
            sql: "s.status",
            kind: FieldKind::Enum(&STATUS),
        },
        FilterField {
            name: "cluster_size",
            sql: "s.cluster_size",
            kind: FieldKind::Int,
        },
        FilterField {
            name: "id",
            sql: "s.id",
            kind: FieldKind::Uuid,
        },
        FilterField {
            name: "created_at",
            sql: "s.created_at",
            kind: FieldKind::DateTime,
        },
        FilterField {
            name: "agent_ids",
            sql: "s.agent_ids",
            kind: FieldKind::TextArray,
        },
        FilterField {
            name: "is_active",
            sql: "u.is_active",
            kind: FieldKind::Bool,
        },
    ];

    fn compile(text: &str) -> Result<(String, usize), MinilangError> {
        let mut params = SqlParams::new();
        let sql = compile_filter(&parse_filter(text)?, FIELDS, &mut params)?;
        Ok((sql, params.len()))
    }

    #[test]
    fn comparisons_bind_values_with_casts() {
        assert_eq!(
            compile(r#"name == "a""#).unwrap(),
            ("s.name = $1::text".into(), 1)
        );
        assert_eq!(
            compile(r#"status == "running""#).unwrap(),
            ("s.status = (SELECT $1::text::sessionstatus)".into(), 1)
        );
        assert_eq!(
            compile("cluster_size > 1").unwrap(),
            ("s.cluster_size > $1::int8".into(), 1)
        );
        assert_eq!(
            compile(r#"created_at >= "2024-01-02T03:04:05+09:00""#).unwrap(),
            ("s.created_at >= $1::timestamptz".into(), 1)
        );
    }

    #[test]
    fn null_bool_in_and_text_operators() {
        assert_eq!(compile("name == null").unwrap().0, "s.name IS NULL");
        assert_eq!(compile("name isnot null").unwrap().0, "s.name IS NOT NULL");
        assert_eq!(
            compile("is_active is true").unwrap().0,
            "u.is_active IS true"
        );
        assert_eq!(
            compile(r#"status in ["PENDING", "RUNNING"]"#).unwrap().0,
            "s.status = ANY(ARRAY(SELECT unnest($1::text[])::sessionstatus))"
        );
        assert_eq!(
            compile(r#"name contains "py""#).unwrap().0,
            "s.name LIKE '%' || $1::text || '%'"
        );
        assert_eq!(
            compile(r#"id ilike "ab%""#).unwrap().0,
            "s.id::text ILIKE $1::text"
        );
    }

    #[test]
    fn array_fields_match_any_item() {
        assert_eq!(
            compile(r#"agent_ids == "i-1""#).unwrap().0,
            "EXISTS (SELECT 1 FROM unnest(s.agent_ids) AS item WHERE item = $1::text)"
        );
    }

    #[test]
    fn combinations_negations_and_params_in_order() {
        let (sql, count) =
            compile(r#"!(name == "a" | cluster_size < 3) & is_active == true"#).unwrap();
        // `!` negates everything after it, as on the original.
        assert_eq!(
            sql,
            "NOT (((s.name = $1::text) OR (s.cluster_size < $2::int8)) AND (u.is_active = $3::bool))"
        );
        assert_eq!(count, 3);
    }

    #[test]
    fn wrong_names_and_values_are_named_in_the_error() {
        let err = compile(r#"nope == "a""#).unwrap_err().to_string();
        assert!(
            err.contains("\"nope\"") && err.contains("name, status"),
            "{err}"
        );
        let err = compile(r#"status == "BOGUS""#).unwrap_err().to_string();
        assert!(err.contains("status") && err.contains("PENDING"), "{err}");
        let err = compile(r#"cluster_size == "3""#).unwrap_err().to_string();
        assert!(
            err.contains("cluster_size") && err.contains("a number"),
            "{err}"
        );
        let err = compile(r#"id == "not-a-uuid""#).unwrap_err().to_string();
        assert!(err.contains("not a UUID"), "{err}");
        let err = compile(r#"created_at > "yesterday""#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("date/time"), "{err}");
        let err = compile("cluster_size like 3").unwrap_err().to_string();
        assert!(err.contains("like takes a string"), "{err}");
        let err = compile(r#"name in "a""#).unwrap_err().to_string();
        assert!(err.contains("in takes an array"), "{err}");
        let err = compile("name > null").unwrap_err().to_string();
        assert!(err.contains("null can only"), "{err}");
    }

    #[test]
    fn ordering_maps_names_to_columns() {
        const ORDER: &[OrderField] = &[
            OrderField {
                name: "name",
                sql: "s.name",
            },
            OrderField {
                name: "created_at",
                sql: "s.created_at",
            },
        ];
        let keys = parse_order("-created_at,name").unwrap();
        assert_eq!(
            compile_order(&keys, ORDER).unwrap(),
            "s.created_at DESC, s.name ASC"
        );
        let err = compile_order(&parse_order("secret").unwrap(), ORDER).unwrap_err();
        assert!(err.to_string().contains("\"secret\""), "{err}");
    }

    #[test]
    fn datetimes_in_common_forms() {
        for text in [
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:04:05.123456+00:00",
            "2024-01-02 03:04:05",
            "2024-01-02T03:04:05",
            "2024-01-02",
        ] {
            assert!(parse_datetime(text).is_some(), "{text}");
        }
        assert!(parse_datetime("02/01/2024").is_none());
    }
}
