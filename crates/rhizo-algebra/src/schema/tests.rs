use super::*;

fn schema() -> Schema {
    Schema::builder()
        .table("accounts")
        .column("balance", MergeType::Add, ValueType::Decimal { scale: 2 })
        .column("views", MergeType::Add, ValueType::Integer)
        .column("score", MergeType::Max, ValueType::Float)
        .column("growth", MergeType::Multiply, ValueType::Float)
        .column("owner", MergeType::Register, ValueType::Integer)
        .table("posts")
        .column_spec(
            "tags",
            ColumnSpec::new(MergeType::ObservedRemoveSet, ValueType::StringSet)
                .unwrap()
                .with_max_set_len(3)
                .with_max_element_len(8),
        )
        .column("readers", MergeType::Union, ValueType::IntSet)
        .build()
        .unwrap()
}

fn check(table: &str, column: &str, op: OpType, value: AlgebraicValue) -> Result<()> {
    schema().validate(table, column, op, &value).map(drop)
}

#[test]
fn valid_ops_pass_and_return_their_column() {
    let s = schema();
    let spec = s
        .validate("accounts", "views", OpType::AbelianAdd, &7.into())
        .unwrap();
    assert_eq!(spec.merge(), MergeType::Add);
    assert_eq!(spec.value_type(), ValueType::Integer);
    let cents: Decimal = "1.5".parse().unwrap();
    assert_eq!(
        check("accounts", "balance", OpType::AbelianAdd, cents.into()),
        Ok(()),
        "a decimal with fewer fractional digits than the column is exact at the column's scale"
    );
    assert_eq!(
        check(
            "posts",
            "tags",
            OpType::OrSetRemove,
            AlgebraicValue::string_set(["a"])
        ),
        Ok(())
    );
    assert_eq!(
        check(
            "accounts",
            "owner",
            OpType::GenericOverwrite,
            AlgebraicValue::Null
        ),
        Ok(()),
        "null clears a register"
    );
}

#[test]
fn each_bad_op_gets_its_typed_error() {
    use AlgebraError as E;
    assert_eq!(
        check("nope", "x", OpType::AbelianAdd, 1.into()),
        Err(E::UnknownTable {
            table: "nope".into()
        })
    );
    assert_eq!(
        check("accounts", "nope", OpType::AbelianAdd, 1.into()),
        Err(E::UnknownColumn {
            table: "accounts".into(),
            column: "nope".into()
        })
    );
    assert_eq!(
        check("accounts", "views", OpType::AbelianMultiply, 2.into()),
        Err(E::OpNotAccepted {
            merge: MergeType::Add,
            op: OpType::AbelianMultiply
        }),
        "ADD then MULTIPLY does not commute"
    );
    assert_eq!(
        check("accounts", "score", OpType::SemilatticeMin, 1.0.into()),
        Err(E::OpNotAccepted {
            merge: MergeType::Max,
            op: OpType::SemilatticeMin
        })
    );
    assert_eq!(
        check(
            "posts",
            "readers",
            OpType::SemilatticeIntersect,
            AlgebraicValue::int_set([1])
        ),
        Err(E::OpNotAccepted {
            merge: MergeType::Union,
            op: OpType::SemilatticeIntersect
        })
    );
    assert_eq!(
        check("accounts", "views", OpType::Unknown, 1.into()),
        Err(E::OpNotAccepted {
            merge: MergeType::Add,
            op: OpType::Unknown
        })
    );
    assert_eq!(
        check("accounts", "views", OpType::GenericOverwrite, 1.into()),
        Err(E::OpNotAccepted {
            merge: MergeType::Add,
            op: OpType::GenericOverwrite
        }),
        "a conflict-free column is not overwritten"
    );
    assert_eq!(
        check("accounts", "views", OpType::AbelianAdd, 1.5.into()),
        Err(E::TypeMismatch {
            expected: ValueType::Integer,
            found: "float".into()
        })
    );
    assert_eq!(
        check(
            "posts",
            "readers",
            OpType::SemilatticeUnion,
            AlgebraicValue::string_set(["x"])
        ),
        Err(E::TypeMismatch {
            expected: ValueType::IntSet,
            found: "string set".into()
        })
    );
    assert_eq!(
        check(
            "accounts",
            "views",
            OpType::AbelianAdd,
            AlgebraicValue::Null
        ),
        Err(E::NullNotAllowed {
            merge: MergeType::Add
        })
    );
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(
            check("accounts", "score", OpType::SemilatticeMax, bad.into()),
            Err(E::NonFiniteFloat {
                bits: bad.to_bits()
            })
        );
        assert_eq!(
            check("accounts", "growth", OpType::AbelianMultiply, bad.into()),
            Err(E::NonFiniteFloat {
                bits: bad.to_bits()
            })
        );
    }
    assert_eq!(
        check(
            "posts",
            "tags",
            OpType::OrSetAdd,
            AlgebraicValue::string_set(["a", "b", "c", "d"])
        ),
        Err(E::SetTooLarge { len: 4, max: 3 })
    );
    assert_eq!(
        check(
            "posts",
            "tags",
            OpType::OrSetAdd,
            AlgebraicValue::string_set(["ninebytes"])
        ),
        Err(E::ElementTooLong { len: 9, max: 8 })
    );
    let fine: Decimal = "0.001".parse().unwrap();
    assert_eq!(
        check("accounts", "balance", OpType::AbelianAdd, fine.into()),
        Err(E::DecimalScale { found: 3, max: 2 })
    );
    let huge = Decimal::new(Decimal::MAX_MANTISSA, 0).unwrap();
    assert_eq!(
        check("accounts", "balance", OpType::AbelianAdd, huge.into()),
        Err(E::DecimalPrecision { max_digits: 38 }),
        "rescaling to two fractional digits would pass 38 digits"
    );
}

#[test]
fn column_matrix_refuses_merges_without_an_exact_order_free_result() {
    use MergeType as M;
    use ValueType as V;
    let all_types = [
        V::Integer,
        V::Float,
        V::Decimal { scale: 2 },
        V::StringSet,
        V::IntSet,
        V::Boolean,
    ];
    let mut accepted = Vec::new();
    for merge in MergeType::ALL {
        for value_type in all_types {
            if ColumnSpec::new(merge, value_type).is_ok() {
                accepted.push((merge, value_type.name()));
            }
        }
    }
    assert_eq!(
        accepted,
        vec![
            (M::Max, "integer"),
            (M::Max, "float"),
            (M::Max, "decimal"),
            (M::Max, "boolean"),
            (M::Min, "integer"),
            (M::Min, "float"),
            (M::Min, "decimal"),
            (M::Min, "boolean"),
            (M::Union, "string set"),
            (M::Union, "int set"),
            (M::Intersect, "string set"),
            (M::Intersect, "int set"),
            (M::Add, "integer"),
            (M::Add, "float"),
            (M::Add, "decimal"),
            (M::Multiply, "integer"),
            (M::Multiply, "float"),
            (M::ObservedRemoveSet, "string set"),
            (M::ObservedRemoveSet, "int set"),
            (M::Register, "integer"),
            (M::Register, "float"),
            (M::Register, "decimal"),
            (M::Register, "string set"),
            (M::Register, "int set"),
            (M::Register, "boolean"),
        ]
    );
    assert!(matches!(
        ColumnSpec::new(M::Multiply, V::Decimal { scale: 2 }),
        Err(AlgebraError::InvalidColumn { .. })
    ));
    assert!(matches!(
        ColumnSpec::new(M::Add, V::Decimal { scale: 19 }),
        Err(AlgebraError::InvalidColumn { .. })
    ));
    let built = Schema::builder()
        .table("t")
        .column("c", M::Union, V::Integer)
        .build();
    assert_eq!(
        built,
        Err(AlgebraError::InvalidColumn {
            merge: M::Union,
            value_type: V::Integer,
            reason: "set operations need a string-set or int-set column".into()
        })
    );
}

#[test]
fn builder_reports_bad_names_and_duplicates() {
    assert_eq!(
        Schema::builder()
            .table("t")
            .column("c", MergeType::Add, ValueType::Integer)
            .column("c", MergeType::Max, ValueType::Integer)
            .build(),
        Err(AlgebraError::DuplicateColumn {
            table: "t".into(),
            column: "c".into()
        })
    );
    assert!(matches!(
        Schema::builder().table("").build(),
        Err(AlgebraError::InvalidName { what, .. }) if what == "table"
    ));
    assert!(matches!(
        Schema::builder()
            .column("c", MergeType::Add, ValueType::Integer)
            .build(),
        Err(AlgebraError::InvalidName { .. })
    ));
    let long = "x".repeat(MAX_NAME_LEN + 1);
    assert!(matches!(
        Schema::builder()
            .table("t")
            .column(&long, MergeType::Add, ValueType::Integer)
            .build(),
        Err(AlgebraError::InvalidName { what, .. }) if what == "column"
    ));
    let empty_table = Schema::builder().table("t").build().unwrap();
    assert_eq!(empty_table.table("t").unwrap().columns().len(), 0);
}

#[test]
fn evolution_adds_columns_and_refuses_redefinition() {
    let v1 = schema();
    assert_eq!(v1.version(), 1);
    let counter = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
    let v2 = v1.with_column("posts", "likes", counter).unwrap();
    assert_eq!(v2.version(), 2);
    assert!(v2.column("posts", "likes").is_ok());
    assert!(
        v1.column("posts", "likes").is_err(),
        "the old schema is unchanged"
    );
    let v3 = v2.with_column("new_table", "n", counter).unwrap();
    assert_eq!(v3.version(), 3);
    assert_eq!(
        v3.with_column("posts", "likes", counter).unwrap(),
        v3,
        "no-op"
    );
    let wider = ColumnSpec::new(MergeType::ObservedRemoveSet, ValueType::StringSet)
        .unwrap()
        .with_max_set_len(10);
    let v4 = v3.with_column("posts", "tags", wider).unwrap();
    assert_eq!(v4.version(), 4);
    assert_eq!(v4.column("posts", "tags").unwrap().max_set_len(), 10);
    assert_eq!(
        v4.with_column(
            "posts",
            "likes",
            ColumnSpec::new(MergeType::Max, ValueType::Integer).unwrap()
        ),
        Err(AlgebraError::ColumnRedefined {
            table: "posts".into(),
            column: "likes".into(),
            from: "ADD integer".into(),
            to: "MAX integer".into()
        })
    );
    assert!(matches!(
        v4.with_column(
            "posts",
            "likes",
            ColumnSpec::new(MergeType::Add, ValueType::Float).unwrap()
        ),
        Err(AlgebraError::ColumnRedefined { .. })
    ));
    assert_eq!(Schema::new().version(), 0);
}

#[cfg(feature = "serde")]
#[test]
fn schema_round_trips_and_decoding_refuses_invalid_columns() {
    let s = schema();
    let bytes = postcard::to_allocvec(&s).unwrap();
    assert_eq!(postcard::from_bytes::<Schema>(&bytes).unwrap(), s);
    let bad = postcard::to_allocvec(&(MergeType::Add, ValueType::StringSet, 1u32, 1u32)).unwrap();
    assert!(postcard::from_bytes::<ColumnSpec>(&bad).is_err());
}

/// Tables and columns are written as the sorted maps they were before lookups became scans:
/// durable schemas keep their bytes, and a schema with many names (searched by bisection)
/// finds every one of them.
#[cfg(feature = "serde")]
#[test]
fn schema_bytes_are_those_of_sorted_maps_and_every_name_is_found() {
    use std::collections::BTreeMap;
    let mut builder = Schema::builder();
    let mut reference: BTreeMap<String, BTreeMap<String, ColumnSpec>> = BTreeMap::new();
    // Declared out of order, more than a scan covers, names of equal and unequal lengths.
    for t in [
        7, 3, 19, 0, 11, 25, 1, 14, 22, 5, 9, 17, 2, 20, 13, 4, 24, 8,
    ] {
        let table = format!("t{t}");
        builder = builder.table(&table);
        for c in [3, 1, 2, 10, 30, 20, 0, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15] {
            let column = format!("c{c}");
            builder = builder.column(&column, MergeType::Add, ValueType::Integer);
            let spec = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
            reference
                .entry(table.clone())
                .or_default()
                .insert(column, spec);
        }
    }
    let schema = builder.build().unwrap();
    for (table, columns) in &reference {
        for (column, spec) in columns {
            assert_eq!(
                schema.column(table, column).unwrap(),
                spec,
                "{table}.{column}"
            );
        }
        assert!(schema.column(table, "c99").is_err());
    }
    assert!(schema.column("t99", "c1").is_err());
    let names: Vec<&str> = schema.tables().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        reference.keys().map(String::as_str).collect::<Vec<_>>()
    );
    let expected = postcard::to_allocvec(&(1u64, &reference)).unwrap();
    assert_eq!(postcard::to_allocvec(&schema).unwrap(), expected);
}
