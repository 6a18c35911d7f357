package smoke

// smokeCase is the real use of one extension or module that `assets smoke`
// runs: Setup once after CREATE EXTENSION, Session at the start of every
// connection that queries, then Query, whose first column of the first row
// must read Want (or which must fail with WantErr).
type smokeCase struct {
	Setup    []string
	Session  []string
	Query    string
	Want     string
	WantErr  string
	Teardown []string
	// NoDump skips the dump/restore round trip (state a dump does not
	// carry, such as replication slots).
	NoDump bool
}

// smokeCases are the queries per plan id. {port} and {db} are replaced
// with the server's port and the extension's database. An id without a case
// is checked by counting its member objects.
var smokeCases = map[string]smokeCase{
	"adminpack":           {Query: "SELECT pg_catalog.pg_file_unlink('pgxtask_smoke_absent')", Want: "false"},
	"amcheck":             {Query: "SELECT bt_index_check('pg_class_oid_index'::regclass)::text", Want: ""},
	"auth_delay":          {Query: "SHOW auth_delay.milliseconds", Want: "0"},
	"auto_explain":        {Session: []string{"LOAD 'auto_explain'"}, Query: "SHOW auto_explain.log_min_duration", Want: "-1"},
	"basebackup_to_shell": {Query: "SHOW basebackup_to_shell.command", Want: ""},
	"basic_archive":       {Session: []string{"LOAD 'basic_archive'"}, Query: "SHOW basic_archive.archive_directory", Want: ""},
	"passwordcheck":       {Session: []string{"LOAD 'passwordcheck'"}, Query: "CREATE ROLE pgxtask_smoke_pw PASSWORD 'x'", WantErr: "password is too short"},
	"test_decoding": {
		Setup:    []string{"SELECT pg_create_logical_replication_slot('pgxtask_smoke', 'test_decoding')", "CREATE TABLE td(a int)", "INSERT INTO td VALUES (1)"},
		Query:    "SELECT count(*) > 0 FROM pg_logical_slot_peek_changes('pgxtask_smoke', NULL, NULL)",
		Want:     "true",
		Teardown: []string{"SELECT pg_drop_replication_slot('pgxtask_smoke')"},
		NoDump:   true,
	},
	"autoinc": {Setup: []string{"CREATE SEQUENCE s", "CREATE TABLE t(id int, x text)",
		"CREATE TRIGGER t BEFORE INSERT ON t FOR EACH ROW EXECUTE PROCEDURE autoinc(id, s)", "INSERT INTO t(x) VALUES ('a')"},
		Query: "SELECT id FROM t", Want: "1"},
	"bloom": {Setup: []string{"CREATE TABLE b AS SELECT g AS a FROM generate_series(1, 100) g", "CREATE INDEX b_bloom ON b USING bloom (a)"},
		Query: "SELECT count(*) FROM b WHERE a = 7", Want: "1"},
	"btree_gin": {Setup: []string{"CREATE TABLE g AS SELECT g AS a FROM generate_series(1, 100) g", "CREATE INDEX g_gin ON g USING gin (a)"},
		Query: "SELECT count(*) FROM g WHERE a = 7", Want: "1"},
	"btree_gist": {Setup: []string{"CREATE TABLE g AS SELECT g AS a FROM generate_series(1, 100) g", "CREATE INDEX g_gist ON g USING gist (a)"},
		Query: "SELECT count(*) FROM g WHERE a = 7", Want: "1"},
	"citext":   {Query: "SELECT 'AbC'::citext = 'abc'::citext", Want: "true"},
	"cube":     {Query: "SELECT cube_dim('(1,2,3)'::cube)", Want: "3"},
	"dblink":   {Query: "SELECT x FROM dblink('host=127.0.0.1 port={port} dbname={db} user=postgres', 'SELECT 41 + 1') AS t(x int)", Want: "42"},
	"dict_int": {Query: "SELECT ts_lexize('intdict', '12345678')::text", Want: "{123456}"},
	"dict_xsyn": {Setup: []string{"CREATE TEXT SEARCH DICTIONARY smoke_xsyn (TEMPLATE = xsyn_template, RULES = 'xsyn_sample')"},
		Query: "SELECT ts_lexize('smoke_xsyn', 'supernova')::text", Want: "{supernova,sn,sne,1987a}"},
	"earthdistance": {Query: "SELECT earth_distance(ll_to_earth(0, 0), ll_to_earth(0, 1)) BETWEEN 111000 AND 112000", Want: "true"},
	"file_fdw": {Setup: []string{"CREATE SERVER f FOREIGN DATA WRAPPER file_fdw", "CREATE FOREIGN TABLE v(a text) SERVER f OPTIONS (filename 'PG_VERSION')"},
		Query: "SELECT a FROM v", Want: "15"},
	"fuzzystrmatch": {Query: "SELECT levenshtein('kitten', 'sitting')", Want: "3"},
	"hstore":        {Query: "SELECT 'a=>1, b=>2'::hstore -> 'b'", Want: "2"},
	"insert_username": {Setup: []string{"CREATE TABLE u(x int, who text)",
		"CREATE TRIGGER u BEFORE INSERT ON u FOR EACH ROW EXECUTE PROCEDURE insert_username(who)", "INSERT INTO u(x) VALUES (1)"},
		Query: "SELECT who FROM u", Want: "postgres"},
	"intagg":   {Query: "SELECT int_array_aggregate(x)::text FROM generate_series(1, 3) x", Want: "{1,2,3}"},
	"intarray": {Query: "SELECT ('{1,2,3}'::int[] & '{2,3,4}'::int[])::text", Want: "{2,3}"},
	"isn":      {Query: "SELECT is_valid('4006381333931'::ean13)", Want: "true"},
	"lo":       {Query: "SELECT lo_oid('1'::lo)::text", Want: "1"},
	"ltree":    {Query: "SELECT nlevel('a.b.c'::ltree)", Want: "3"},
	"moddatetime": {Setup: []string{"CREATE TABLE m(x int, t timestamp)",
		"CREATE TRIGGER m BEFORE UPDATE ON m FOR EACH ROW EXECUTE PROCEDURE moddatetime(t)", "INSERT INTO m VALUES (1, NULL)", "UPDATE m SET x = 2"},
		Query: "SELECT t IS NOT NULL FROM m", Want: "true"},
	"old_snapshot":       {Query: "SELECT count(*) >= 0 FROM pg_old_snapshot_time_mapping()", Want: "true"},
	"pageinspect":        {Query: "SELECT (page_header(get_raw_page('pg_class', 0))).pagesize", Want: "8192"},
	"pg_buffercache":     {Query: "SELECT count(*) > 0 FROM pg_buffercache WHERE relfilenode IS NOT NULL", Want: "true"},
	"pg_freespacemap":    {Query: "SELECT count(*) > 0 FROM pg_freespace('pg_class')", Want: "true"},
	"pg_prewarm":         {Query: "SELECT pg_prewarm('pg_class') > 0", Want: "true"},
	"pg_stat_statements": {Query: "SELECT count(*) > 0 FROM pg_stat_statements", Want: "true"},
	"pg_surgery": {Setup: []string{"CREATE TABLE s(a int)", "INSERT INTO s VALUES (1)", "SELECT heap_force_kill('s'::regclass, ARRAY['(0,1)']::tid[])"},
		Query: "SELECT count(*) FROM s", Want: "0"},
	"pg_trgm":       {Query: "SELECT similarity('word', 'words') > 0.5", Want: "true"},
	"pg_visibility": {Query: "SELECT count(*) > 0 FROM pg_visibility_map('pg_class')", Want: "true"},
	"pg_walinspect": {Setup: []string{"CREATE TABLE w(l pg_lsn)", "INSERT INTO w VALUES (pg_current_wal_flush_lsn())", "CREATE TABLE w2 AS SELECT 1 AS a"},
		Query: "SELECT count(*) > 0 FROM pg_get_wal_records_info((SELECT l FROM w), pg_current_wal_flush_lsn())", Want: "true"},
	"pgcrypto":    {Query: "SELECT encode(digest('abc', 'sha256'), 'hex')", Want: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	"pgrowlocks":  {Setup: []string{"CREATE TABLE r(a int)", "INSERT INTO r VALUES (1)"}, Query: "SELECT count(*) FROM pgrowlocks('r')", Want: "0"},
	"pgstattuple": {Query: "SELECT table_len > 0 FROM pgstattuple('pg_class')", Want: "true"},
	"postgres_fdw": {Setup: []string{
		"CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '{port}', dbname '{db}')",
		"CREATE USER MAPPING FOR CURRENT_USER SERVER loopback OPTIONS (user 'postgres')", "CREATE TABLE loc(a int)", "INSERT INTO loc VALUES (42)",
		"CREATE FOREIGN TABLE rem(a int) SERVER loopback OPTIONS (table_name 'loc')"},
		Query: "SELECT a FROM rem", Want: "42"},
	"refint": {Setup: []string{"CREATE TABLE pk(id int)", "CREATE TABLE fk(ref int)",
		"CREATE TRIGGER fk BEFORE INSERT OR UPDATE ON fk FOR EACH ROW EXECUTE PROCEDURE check_primary_key('ref', 'pk', 'id')",
		"INSERT INTO pk VALUES (1)", "INSERT INTO fk VALUES (1)"},
		Query: "SELECT count(*) FROM fk", Want: "1"},
	"seg":       {Query: "SELECT seg_lower('1.5 .. 2.5'::seg)", Want: "1.5"},
	"sslinfo":   {Query: "SELECT ssl_is_used()", Want: "false"},
	"tablefunc": {Query: "SELECT count(*) FROM normal_rand(5, 0, 1)", Want: "5"},
	"tcn": {Setup: []string{"CREATE TABLE c(id int PRIMARY KEY)",
		"CREATE TRIGGER c AFTER INSERT ON c FOR EACH ROW EXECUTE FUNCTION triggered_change_notification()", "INSERT INTO c VALUES (1)"},
		Query: "SELECT count(*) FROM c", Want: "1"},
	"tsm_system_rows": {Query: "SELECT count(*) FROM pg_class TABLESAMPLE system_rows(3)", Want: "3"},
	"tsm_system_time": {Query: "SELECT count(*) > 0 FROM pg_class TABLESAMPLE system_time(1000)", Want: "true"},
	"unaccent":        {Query: "SELECT unaccent('Hôtel')", Want: "Hotel"},
	"uuid-ossp":       {Query: "SELECT length(uuid_generate_v4()::text)", Want: "36"},
	"xml2":            {Query: "SELECT xpath_string('<a>b</a>', '/a')", Want: "b"},
	"vector": {Setup: []string{"CREATE TABLE items(id int, v vector(3))", "INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[4,5,6]')",
		"CREATE INDEX items_hnsw ON items USING hnsw (v vector_l2_ops)"},
		Query: "SELECT id FROM items ORDER BY v <-> '[3,3,3]' LIMIT 1", Want: "1"},
	"pgtap": {Session: []string{"SELECT plan(1)"}, Query: "SELECT ok(true, 'smoke')", Want: "ok 1 - smoke"},
}
