//! The shape of the tables Django owns, as the fleet finds them: whether Django manages the
//! database, and whether the `accounts_*` tables the fleet writes take its rows.
//!
//! On a Django database (one with `django_migrations`) the `accounts_*` tables are made by the
//! site's migrations, not by ours. The fleet then never inserts profiles (the site owns its users)
//! and checks at start that every column it writes exists, that no other column would refuse
//! its rows (`NOT NULL` without a default), and that the login's upsert has its unique index on
//! `session_id`; [`inspect`] names the first difference in one line.
//! `accounts_usersession.is_ended`, a column the seed's queries filter on, is kept in step with
//! `ended_at` where it exists.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement};
use tokio::sync::OnceCell;

/// What the fleet writes to each Django-owned table: `(table, columns)`. A profile is only read
/// (`id`, `division_id`) on a Django database; standalone, the fleet's own migration made it.
pub const WRITTEN: &[(&str, &[&str])] = &[
    ("accounts_userprofile", &["id", "division_id"]),
    (
        "accounts_usersession",
        &[
            "user_id",
            "session_id",
            "ip_address",
            "user_agent",
            "device_info",
            "location_data",
            "device_fingerprint",
            "fast_fingerprint",
            "persistent",
            "pages_visited",
            "started_at",
            "last_activity",
            "ended_at",
            "expires_at",
            "is_active",
        ],
    ),
    (
        "accounts_userevent",
        &[
            "user_id",
            "event_type",
            "description",
            "metadata",
            "ip_address",
            "user_agent",
            "created_at",
        ],
    ),
];

/// Columns the fleet writes when a table has them.
const OPTIONAL: &[(&str, &str)] = &[("accounts_usersession", "is_ended")];

/// The database as the fleet found it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Django manages the database (`django_migrations` exists): profiles are never inserted.
    pub django: bool,
    /// `accounts_usersession` has the seed's `is_ended` column.
    pub session_is_ended: bool,
    /// Where a profile's username is.
    pub profile_name: ProfileName,
}

/// Where a user's name is, for the analytics that print it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProfileName {
    /// `accounts_userprofile.username` (the standalone table).
    Own,
    /// `auth_user.username`, through `accounts_userprofile.user_id` (the seed's Django profile).
    AuthUser,
    /// Neither.
    #[default]
    Unknown,
}

/// Why the fleet cannot write a Django-owned table.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A column the fleet writes is missing.
    #[error("{table}.{column} does not exist, and Celeriac writes it (Celeriac writes {table}: {})", written(.table))]
    Missing {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
    },
    /// A column the fleet does not write would refuse its rows.
    #[error("{table}.{column} is NOT NULL without a default, and Celeriac does not write it: give it a database default or let it be NULL (Celeriac writes {table}: {})", written(.table))]
    Unwritable {
        /// The table.
        table: &'static str,
        /// The column.
        column: String,
    },
    /// A column the fleet's upserts name in `ON CONFLICT` has no unique index of its own.
    #[error(
        "{table}.{column} has no unique index of its own, and Celeriac's login is an upsert on it (ON CONFLICT ({column})): add one (Django: unique=True)"
    )]
    NotUnique {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
    },
    /// The catalogue could not be read.
    #[error("cannot read the database's catalogue: {0}")]
    Db(#[from] DbErr),
}

fn written(table: &str) -> String {
    WRITTEN
        .iter()
        .find(|(t, _)| *t == table)
        .map(|(_, cols)| cols.join(", "))
        .unwrap_or_default()
}

/// One column of a table, as the catalogue describes it.
struct Column {
    name: String,
    /// `NOT NULL` with no default and not generated: an insert must name it.
    required: bool,
}

/// The tables [`inspect`] looks at.
const INSPECTED: [&str; 5] = [
    "django_migrations",
    "auth_user",
    "accounts_userprofile",
    "accounts_usersession",
    "accounts_userevent",
];

/// The columns of each of `tables` that exists (a missing table has none). On PostgreSQL one
/// query of the catalogue for all of them: a new connection's first `information_schema` query
/// takes ~9 ms and each further one ~3, and a worker's start waited for eight of them.
async fn catalogue(
    db: &impl ConnectionTrait,
    tables: &[&str],
) -> Result<HashMap<String, Vec<Column>>, DbErr> {
    let backend = db.get_database_backend();
    let mut out: HashMap<String, Vec<Column>> = HashMap::new();
    if backend != DatabaseBackend::Postgres {
        for table in tables {
            out.insert((*table).to_owned(), columns(db, table).await?);
        }
        return Ok(out);
    }
    let places = (1..=tables.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    // What information_schema.columns says, from the catalogue itself: the same relations
    // (tables, partitioned tables, views, foreign tables of the current schema, compared by
    // name as text), the same columns (those the role owns or holds a privilege on), and its
    // `is_nullable = 'NO'` (the column's NOT NULL, or a NOT NULL domain's), no default (a
    // generated column has one too), not identity, not generated. PostgreSQL 12 or newer.
    let sql = format!(
        "SELECT c.relname AS t, a.attname AS name, \
         ((a.attnotnull OR (ty.typtype = 'd' AND ty.typnotnull)) AND NOT a.atthasdef \
         AND a.attidentity = '' AND a.attgenerated = '') AS required \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_type ty ON ty.oid = a.atttypid \
         WHERE n.nspname = current_schema() AND c.relname IN ({places}) \
         AND c.relkind IN ('r', 'p', 'v', 'f') AND a.attnum > 0 AND NOT a.attisdropped \
         AND (pg_has_role(c.relowner, 'USAGE') \
         OR has_column_privilege(c.oid, a.attnum, 'SELECT, INSERT, UPDATE, REFERENCES')) \
         ORDER BY c.relname, a.attnum"
    );
    let values = tables.iter().map(|t| (*t).into());
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    for r in &rows {
        out.entry(r.try_get("", "t")?).or_default().push(Column {
            name: r.try_get("", "name")?,
            required: r.try_get("", "required")?,
        });
    }
    Ok(out)
}

/// The columns of `table` on SQLite (none if it does not exist).
async fn columns(db: &impl ConnectionTrait, table: &str) -> Result<Vec<Column>, DbErr> {
    let backend = db.get_database_backend();
    let sql = "SELECT name, (\"notnull\" = 1 AND dflt_value IS NULL \
               AND NOT (pk > 0 AND upper(type) LIKE '%INT%')) AS required \
               FROM pragma_table_info($1)";
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, [table.into()]))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Column {
                name: r.try_get("", "name")?,
                required: r.try_get("", "required")?,
            })
        })
        .collect()
}

/// Whether `table.column` alone has a unique index (what `ON CONFLICT (column)` needs).
async fn unique_alone(db: &impl ConnectionTrait, table: &str, column: &str) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            "SELECT 1 AS one FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid \
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0] \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE t.relname = $1 AND n.nspname = current_schema() \
             AND i.indisunique AND i.indnatts = 1 AND a.attname = $2"
        }
        _ => {
            "SELECT 1 AS one FROM pragma_index_list($1) AS l \
             WHERE l.\"unique\" = 1 \
             AND (SELECT COUNT(*) FROM pragma_index_info(l.name)) = 1 \
             AND (SELECT name FROM pragma_index_info(l.name)) = $2"
        }
    };
    Ok(db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [table.into(), column.into()],
        ))
        .await?
        .is_some())
}

/// Read the database's shape, and refuse (with the first difference) Django-owned tables the
/// fleet cannot write. Tables that do not exist yet (before `migration up`) are not checked.
///
/// # Errors
///
/// [`SchemaError`] naming the table and column, or the catalogue's error.
pub async fn inspect(db: &impl ConnectionTrait) -> Result<Shape, SchemaError> {
    let catalogue = catalogue(db, &INSPECTED).await?;
    let columns = |table: &str| catalogue.get(table).map_or(&[][..], Vec::as_slice);
    let mut shape = Shape {
        django: !columns("django_migrations").is_empty(),
        ..Shape::default()
    };
    let profile = columns("accounts_userprofile");
    shape.profile_name = if profile.iter().any(|c| c.name == "username") {
        ProfileName::Own
    } else if profile.iter().any(|c| c.name == "user_id") && !columns("auth_user").is_empty() {
        ProfileName::AuthUser
    } else {
        ProfileName::Unknown
    };
    for (table, written) in WRITTEN {
        let found = columns(table);
        if found.is_empty() {
            continue;
        }
        if let Some(missing) = written
            .iter()
            .find(|c| !found.iter().any(|f| f.name == **c))
        {
            return Err(SchemaError::Missing {
                table,
                column: missing,
            });
        }
        for col in found {
            let optional = OPTIONAL.contains(&(table, col.name.as_str()));
            if optional && *table == "accounts_usersession" {
                shape.session_is_ended = true;
            }
            // An `id` that the database fills (identity, serial, SQLite's integer key) is not
            // required; one it does not (a Django UUID key with a Python-side default) is.
            let ours = written.contains(&col.name.as_str()) || optional;
            // Profiles are only read on a Django database (standalone, our migration made them).
            let read_only = *table == "accounts_userprofile";
            if col.required && !ours && !read_only {
                return Err(SchemaError::Unwritable {
                    table,
                    column: col.name.clone(),
                });
            }
        }
    }
    if !columns("accounts_usersession").is_empty()
        && !unique_alone(db, "accounts_usersession", "session_id").await?
    {
        return Err(SchemaError::NotUnique {
            table: "accounts_usersession",
            column: "session_id",
        });
    }
    Ok(shape)
}

/// [`inspect`]'s answer, read once per process on first use and shared by every clone.
#[derive(Debug, Clone, Default)]
pub struct ShapeCache(Arc<OnceCell<Shape>>);

impl ShapeCache {
    /// The database's shape: the cached one, or [`inspect`]'s (a failure is not cached).
    ///
    /// # Errors
    ///
    /// [`inspect`]'s.
    pub async fn get(&self, db: &impl ConnectionTrait) -> Result<Shape, SchemaError> {
        self.0.get_or_try_init(|| inspect(db)).await.copied()
    }

    /// Remember `shape` (what the process found at start).
    pub fn set(&self, shape: Shape) {
        let _ = self.0.set(shape);
    }
}
