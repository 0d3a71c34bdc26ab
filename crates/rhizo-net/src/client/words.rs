//! Transactions written as words, the way a command line takes them:
//! `increment counters page_views 1 + add_to_set users u1 tags premium`.
//!
//! Operations are separated by a lone `+`. Each is `VERB TABLE ROW [COLUMN] VALUE`
//! (`compare_and_set TABLE ROW [COLUMN] EXPECTED NEW`); the column defaults to
//! [`rhizo_txn::DEFAULT_COLUMN`]. Values are read as the column's value type in `schema`
//! ([`rhizo_algebra::ValueType::parse_literal`]), so the client asks the node for its schema
//! first.

use rhizo_algebra::{AlgebraicValue, Schema};
use rhizo_commit::{AlgebraicTransaction, Operation, Operations};
use rhizo_txn::DEFAULT_COLUMN;

use crate::{NetError, Result};

/// The separator between two operations.
pub const OPERATION_SEPARATOR: &str = "+";

fn usage(reason: String) -> NetError {
    NetError::Usage { reason }
}

/// The transaction `words` write, with values read as `schema`'s column types.
pub fn transaction_from_words(words: &[String], schema: &Schema) -> Result<AlgebraicTransaction> {
    let mut tx = AlgebraicTransaction::new();
    for operation in words.split(|word| word == OPERATION_SEPARATOR) {
        let Some((verb, args)) = operation.split_first() else {
            return Err(usage(format!(
                "an empty operation (two {OPERATION_SEPARATOR:?} in a row, or one at an end)"
            )));
        };
        let values = if verb == "compare_and_set" { 2 } else { 1 };
        let (table, row, column, literals) = match args.len() - values.min(args.len()) {
            2 => (&args[0], &args[1], DEFAULT_COLUMN, &args[2..]),
            3 => (&args[0], &args[1], args[2].as_str(), &args[3..]),
            _ => {
                return Err(usage(format!(
                    "{verb} takes TABLE ROW [COLUMN] and {values} value(s); got {} words",
                    args.len()
                )));
            }
        };
        let value_type = schema
            .column(table, column)
            .map_err(|err| usage(format!("{table}.{column}: {err}")))?
            .value_type();
        let parsed: Vec<AlgebraicValue> = literals
            .iter()
            .map(|literal| value_type.parse_literal(literal))
            .collect::<std::result::Result<_, _>>()
            .map_err(|err| usage(err.to_string()))?;
        let mut parsed = parsed.into_iter();
        let (first, second) = (parsed.next(), parsed.next());
        // For compare_and_set the words are EXPECTED NEW; `named` takes (new, expected).
        let (value, expected) = match second {
            Some(new) => (new, first),
            None => (first.unwrap_or(AlgebraicValue::Null), None),
        };
        let operation =
            Operation::named(verb, value, expected).map_err(|err| usage(err.to_string()))?;
        tx.operation(table, row, column, operation);
    }
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use rhizo_algebra::{MergeType, ValueType};

    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    fn schema() -> Schema {
        Schema::builder()
            .table("counters")
            .column("value", MergeType::Add, ValueType::Integer)
            .table("users")
            .column("tags", MergeType::ObservedRemoveSet, ValueType::StringSet)
            .table("kv")
            .column("value", MergeType::Register, ValueType::Float)
            .build()
            .unwrap()
    }

    #[test]
    fn words_make_the_transaction_the_verbs_make() {
        let tx = transaction_from_words(
            &words(
                "increment counters page_views 1 + add_to_set users u1 tags a,b + \
                 compare_and_set kv r 1.5 2.5",
            ),
            &schema(),
        )
        .unwrap();
        let mut expected = AlgebraicTransaction::new();
        expected
            .increment("counters", "page_views", "value", 1)
            .add_to_set("users", "u1", "tags", ["a", "b"])
            .compare_and_set("kv", "r", "value", 1.5, 2.5);
        assert_eq!(tx, expected);
    }

    #[test]
    fn malformed_words_are_usage_errors() {
        for text in [
            "increment counters",
            "increment counters page_views a",
            "increment counters page_views 1 +",
            "increment nowhere page_views 1",
            "frobnicate counters page_views 1",
            "increment counters page_views value 1 extra",
        ] {
            let err = transaction_from_words(&words(text), &schema()).unwrap_err();
            assert!(matches!(err, NetError::Usage { .. }), "{text}: {err:?}");
        }
    }
}
