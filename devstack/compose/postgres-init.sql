-- Run once, when compose.yaml's PostgreSQL creates its data volume: Unleash keeps its tables in a
-- database of its own, beside the platform's (POSTGRES_DB creates that one).
CREATE DATABASE unleash OWNER krowoc;
