from tests.fixtures.pgserver import PgServer


def test_role_can_log_in_over_tcp_with_scram(pg_server: PgServer) -> None:
    import psycopg
    pg_server.create_role("alice", "s3cret")
    with psycopg.connect(pg_server.tcp_dsn("alice", "s3cret")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("alice",)
