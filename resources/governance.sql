-- Unity Catalog governance of the clickstream pipeline: who reads which layer.
--
-- Run by the job `clickstream_governance` (resources/governance.job.yml) on a SQL warehouse,
-- after a pipeline update has created the tables, with the named parameters :catalog,
-- :schema, :analysts and :engineers (bundle variables). GRANT is idempotent: run it again
-- after each deployment. The pipeline's run-as identity owns and writes every table; people
-- get SELECT only.
--
--   bronze  raw lines and `_rescued_data` may hold PII in clear  engineers only
--   silver  pseudonymized events, quarantine, late events        engineers only
--   gold    star schema and aggregates                           engineers and analysts
--   gold_user_versions (AUTO CDC state, Databricks only)          engineers only
--
-- No schema-wide SELECT is granted: it would open bronze and silver to analysts. Principals
-- cannot be bound as parameters in GRANT, hence EXECUTE IMMEDIATE.

USE CATALOG IDENTIFIER(:catalog);
USE SCHEMA IDENTIFIER(:schema);

EXECUTE IMMEDIATE 'GRANT USE CATALOG ON CATALOG `' || :catalog || '` TO `' || :analysts || '`';
EXECUTE IMMEDIATE 'GRANT USE CATALOG ON CATALOG `' || :catalog || '` TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'GRANT USE SCHEMA ON SCHEMA `' || :schema || '` TO `' || :analysts || '`';
EXECUTE IMMEDIATE 'GRANT USE SCHEMA ON SCHEMA `' || :schema || '` TO `' || :engineers || '`';


-- bronze
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE bronze_events TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE bronze_quarantine TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'REVOKE SELECT ON TABLE bronze_events FROM `' || :analysts || '`';
EXECUTE IMMEDIATE 'REVOKE SELECT ON TABLE bronze_quarantine FROM `' || :analysts || '`';

-- silver
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE silver_events TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE silver_quarantine TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE silver_late_events TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'REVOKE SELECT ON TABLE silver_events FROM `' || :analysts || '`';
EXECUTE IMMEDIATE 'REVOKE SELECT ON TABLE silver_quarantine FROM `' || :analysts || '`';
EXECUTE IMMEDIATE 'REVOKE SELECT ON TABLE silver_late_events FROM `' || :analysts || '`';

-- gold
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_dim_user TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_dim_user TO `' || :analysts || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_dim_page TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_dim_page TO `' || :analysts || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_dim_device TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_dim_device TO `' || :analysts || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_dim_date TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_dim_date TO `' || :analysts || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_fact_events TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_fact_events TO `' || :analysts || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_daily_active_users TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_daily_active_users TO `' || :analysts || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_funnel_daily TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_funnel_daily TO `' || :analysts || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_sessions TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_sessions TO `' || :analysts || '`';

-- gold internals: the AUTO CDC versions behind gold_dim_user (Databricks only)
EXECUTE IMMEDIATE 'GRANT SELECT ON TABLE gold_user_versions TO `' || :engineers || '`';
EXECUTE IMMEDIATE 'REVOKE SELECT ON TABLE gold_user_versions FROM `' || :analysts || '`';
