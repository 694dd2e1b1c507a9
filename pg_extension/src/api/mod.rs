//! The SQL-facing functions of schema `erasure`: thin entry points that parse arguments, call
//! the engine and raise its errors as SQLSTATEs. All are SECURITY DEFINER with a fixed
//! search_path; EXECUTE goes to roles (see `sql/finalize.sql`), never to PUBLIC.

mod holds;
mod modules;
mod requests;
