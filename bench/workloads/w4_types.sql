-- W4: 40 columns of mixed types, one row per value set: the cost of
-- encoding each PostgreSQL type as JSON. Size: "rows" (default 300,000).
\if :{?rows} \else \set rows 300000 \endif
create table if not exists public.bench_types (
    id bigint primary key,
    c_int2 smallint, c_int4 int, c_int8 bigint, c_float4 real,
    c_float8 double precision, c_numeric numeric(20,6), c_bool boolean,
    c_text text, c_varchar varchar(64), c_char char(8), c_bytea bytea,
    c_date date, c_time time, c_timetz timetz, c_ts timestamp,
    c_tstz timestamptz, c_interval interval, c_uuid uuid, c_json json,
    c_jsonb jsonb, c_inet inet, c_cidr cidr, c_macaddr macaddr,
    c_int4_arr int[], c_text_arr text[], c_numrange numrange,
    c_tsrange tsrange, c_money money, c_bit bit(8), c_varbit varbit,
    c_point point, c_xml xml, c_oid oid, c_name name, c_int8_arr bigint[],
    c_bool_arr boolean[], c_jsonb_arr jsonb[], c_float8_arr float8[],
    c_null text
);
insert into public.bench_types
select n, (n % 32000)::smallint, n, n::bigint * 1000003, n / 7.0, n / 3.0,
       (n * 1.000001)::numeric(20,6), n % 2 = 0, 'text ' || n, 'v' || n,
       'c' || (n % 100), decode(md5(n::text), 'hex'),
       date '2020-01-01' + (n % 3000),
       time '12:00' + (n % 3600) * interval '1 second', timetz '12:00+02',
       timestamp '2020-01-01' + n * interval '1 second',
       timestamptz '2020-01-01 00:00+00' + n * interval '1 minute',
       (n % 1000) * interval '1 hour', md5(n::text)::uuid,
       json_build_object('g', n), jsonb_build_object('g', n, 's', 'x'),
       '10.0.0.1'::inet, '10.0.0.0/8'::cidr, '08:00:2b:01:02:03'::macaddr,
       array[n, n + 1, n + 2], array['a' || n, 'b'], numrange(n, n + 10),
       tsrange('2020-01-01', '2020-01-02'), (n % 1000)::numeric::money,
       (n % 256)::bit(8), B'1011', point(n, n / 2.0),
       xmlparse(content '<a>' || n || '</a>'), (n % 100000)::oid,
       ('n' || n)::name, array[n::bigint, -n::bigint],
       array[true, false, null], array[jsonb_build_object('k', n)],
       array[n / 3.0, 1e300], null
from generate_series(1, :rows) as n;
