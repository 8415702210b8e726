#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn smoke() {
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM tenancy.migrations").unwrap(),
            Some(5)
        );
    }
}
