//! IP address columns: `inet` on PostgreSQL, `text` on SQLite, a `String` in Rust.
//!
//! SeaORM binds a `String` as `text`, and PostgreSQL has no implicit cast from `text` to `inet`,
//! so a plain `String` field fails on insert. The `select_as`/`save_as` attributes of
//! `DeriveEntityModel` cannot fix this for both backends: they emit `CAST(.. AS ..)` everywhere,
//! and SQLite turns `CAST('203.0.113.45' AS inet)` into the number `203` (an unknown type name
//! has NUMERIC affinity). Reading needs care too: `CAST(inet AS text)` always appends the mask
//! (`203.0.113.45/32`).
//!
//! The entities with IP columns therefore implement `ColumnTrait` by hand and route those
//! columns through [`save_as`] and [`select_as`], which use SeaQuery's `AS enum` expression: it
//! renders as a `CAST` on PostgreSQL and as the bare expression on SQLite. Writes cast to `inet`;
//! reads cast to `name`, an I/O conversion that prints exactly what Django's driver returns
//! (`203.0.113.45`, `10.0.0.0/8`). Filters such as `Column::IpAddress.eq(ip)` go through
//! `save_as` too. Raw `col_expr`/`Expr::val` updates do not: wrap the value with
//! `Column::IpAddress.save_as(Expr::val(ip))` there.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::ExprTrait;

/// Column definition of a nullable IP address column (PostgreSQL `inet`).
///
/// Only used for metadata; the schema itself comes from the `migration` crate, which writes
/// `text` on SQLite.
pub fn def() -> ColumnDef {
    ColumnType::Inet.def().nullable()
}

/// Write-side expression: `CAST($1 AS "inet")` on PostgreSQL, the bare value elsewhere.
pub fn save_as(val: Expr) -> Expr {
    val.as_enum("inet")
}

/// Read-side expression: `CAST(col AS "name")` on PostgreSQL, the bare column elsewhere.
pub fn select_as(expr: Expr) -> Expr {
    expr.as_enum("name")
}

#[cfg(test)]
mod tests {
    use sea_orm::{ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryTrait, Set};

    use crate::user_event::{self, Column, Entity as UserEvent};

    fn insert_sql(backend: DbBackend) -> String {
        UserEvent::insert(user_event::ActiveModel {
            ip_address: Set(Some("203.0.113.45".to_owned())),
            ..Default::default()
        })
        .build(backend)
        .to_string()
    }

    #[test]
    fn postgres_casts_written_addresses_to_inet_and_reads_them_as_name() {
        assert!(
            insert_sql(DbBackend::Postgres).contains(r#"VALUES (CAST('203.0.113.45' AS "inet"))"#)
        );
        let select = UserEvent::find()
            .filter(Column::IpAddress.eq("203.0.113.45"))
            .build(DbBackend::Postgres)
            .to_string();
        // PostgreSQL names a cast column after the column, so the result is still `ip_address`.
        assert!(
            select.contains(r#"CAST("accounts_userevent"."ip_address" AS "name")"#),
            "{select}"
        );
        assert!(
            select.contains(r#""ip_address" = (CAST('203.0.113.45' AS "inet"))"#),
            "{select}"
        );
    }

    #[test]
    fn sqlite_reads_and_writes_addresses_as_plain_text() {
        assert!(insert_sql(DbBackend::Sqlite).contains("VALUES ('203.0.113.45')"));
        let select = UserEvent::find()
            .filter(Column::IpAddress.eq("203.0.113.45"))
            .build(DbBackend::Sqlite)
            .to_string();
        assert!(!select.contains("CAST"), "{select}");
    }
}
