//! Integration tests: the emulator and the gateway on port 0, real HTTP, one binary.

mod auth;
mod calendar;
mod cli;
mod config_files;
mod connected;
mod contacts;
mod contracts;
mod cors;
mod docker;
mod efficiency;
mod files;
mod files_memory;
mod graph_examples;
mod graphiql;
mod graphql_directory;
mod helpers;
mod identity;
mod idp;
mod jwt_security;
mod mail_memory;
mod mail_read;
mod mail_send;
mod policy;
mod process;
mod resilience;
mod rest_directory;
