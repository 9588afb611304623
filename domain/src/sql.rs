//! SQL access helpers shared by the API and the jobs: statements written once for both dialects.
//!
//! Statements are written with PostgreSQL's numbered placeholders (`$1`, `$2` …), which SQLite
//! also accepts and sqlx binds by number on both, so the text is never rewritten. Where the
//! dialects differ in a function, the statement asks this module for the right spelling
//! ([`greatest`]).

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement, Value};

/// A statement for `backend`: `sql` (with `$n` placeholders) as written, and its values.
pub fn statement(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql, values)
}

/// Run `sql` (with `$n` placeholders) on `db`; the rows it affected.
pub async fn execute(
    db: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
) -> Result<u64, DbErr> {
    let stmt = statement(db.get_database_backend(), sql, values);
    Ok(db.execute_raw(stmt).await?.rows_affected())
}

/// The function that returns the largest of its arguments: `GREATEST` on PostgreSQL, SQLite's
/// multi-argument `MAX`.
pub fn greatest(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres | DatabaseBackend::MySql => "GREATEST",
        _ => "MAX",
    }
}

/// The placeholders of row `row` (0-based) of a multi-row `VALUES` list of `cols` columns:
/// `($1, $2, $3)` for row 0 of 3, `($4, $5, $6)` for row 1.
pub fn row_placeholders(row: usize, cols: usize) -> String {
    let first = row * cols + 1;
    let list: Vec<String> = (first..first + cols).map(|n| format!("${n}")).collect();
    format!("({})", list.join(", "))
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Database, DatabaseBackend};

    #[test]
    fn row_placeholders_number_each_row_after_the_last() {
        assert_eq!(super::row_placeholders(0, 3), "($1, $2, $3)");
        assert_eq!(super::row_placeholders(2, 2), "($5, $6)");
    }

    /// SQLite binds `$n` by its number (not by order of appearance), and a literal `$` in the
    /// text stays what it is: the reason statements are never rewritten.
    #[tokio::test]
    async fn sqlite_binds_numbered_placeholders_and_keeps_literal_dollars() {
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        let stmt = super::statement(
            DatabaseBackend::Sqlite,
            &format!(
                "SELECT $2 || '|' || $1 || '|' || '$1 costs $5' || '|' || {}(3, $3) AS v",
                super::greatest(DatabaseBackend::Sqlite)
            ),
            vec!["one".into(), "two".into(), 7i32.into()],
        );
        let row = db.query_one_raw(stmt).await.expect("query").expect("a row");
        let v: String = row.try_get("", "v").expect("v");
        assert_eq!(v, "two|one|$1 costs $5|7");
    }
}
