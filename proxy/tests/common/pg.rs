//! A test's own schema on the PostgreSQL of `TEST_DATABASE_URL` (for tests that run on both
//! databases); `None`, after saying so, without it (a failure under `CI=true`).

/// A fresh schema, reached through `search_path` in [`Schema::url`].
pub struct Schema {
    base: String,
    name: String,
    /// The database URL of this schema.
    pub url: String,
}

impl Schema {
    pub async fn new(prefix: &str) -> Option<Schema> {
        let base = match std::env::var("TEST_DATABASE_URL") {
            Ok(base) if !base.is_empty() => base,
            _ => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but TEST_DATABASE_URL is not set: the PostgreSQL cases must run there"
                );
                eprintln!("TEST_DATABASE_URL is not set: PostgreSQL cases skipped");
                return None;
            }
        };
        let name = format!("{prefix}_{}", hex::encode(rand::random::<[u8; 6]>()));
        Self::execute(&base, &format!("CREATE SCHEMA {name}")).await;
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(Schema {
            url: format!("{base}{sep}options=-c%20search_path%3D{name}"),
            base,
            name,
        })
    }

    async fn execute(base: &str, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(base)
            .await
            .expect("TEST_DATABASE_URL connects");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .unwrap();
    }

    pub async fn cleanup(self) {
        Self::execute(&self.base, &format!("DROP SCHEMA {} CASCADE", self.name)).await;
    }
}
