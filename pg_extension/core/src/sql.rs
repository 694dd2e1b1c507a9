//! Quoting for identifiers built into SQL text. Values never go into SQL text: they are parameters.

/// Quotes one identifier the way PostgreSQL's `quote_ident` does, always.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a possibly schema-qualified table name (`schema.table` or `table`, which means `public.table`).
pub fn quote_table(name: &str) -> String {
    let (schema, table) = split_table(name);
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// Splits `schema.table`; an unqualified name lives in `public`.
pub fn split_table(name: &str) -> (&str, &str) {
    name.split_once('.').unwrap_or(("public", name))
}

/// Quotes a string as an SQL literal. Used only for catalog look-ups of names in fixed
/// validation queries built by the extension, never for request data.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_table("contacts"), "\"public\".\"contacts\"");
        assert_eq!(quote_table("crm.contacts"), "\"crm\".\"contacts\"");
        assert_eq!(quote_literal("o'neil"), "'o''neil'");
    }
}
