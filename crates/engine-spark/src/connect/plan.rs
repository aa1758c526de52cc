//! Spark Connect plans, built as protocol messages: relations, expressions, ML operators and
//! their parameters (sent the way PySpark sends them: whole numbers as 32-bit integers unless they
//! do not fit, lists as array literals).

use std::collections::HashMap;

use spark_connect_proto as pb;

fn relation(rel_type: pb::relation::RelType) -> pb::Relation {
    pb::Relation { common: None, rel_type: Some(rel_type) }
}

/// A SQL query as a relation.
pub(crate) fn sql(query: &str) -> pb::Relation {
    relation(pb::relation::RelType::Sql(pb::Sql { query: query.to_owned(), ..Default::default() }))
}

/// A table or temporary view by name.
pub(crate) fn table(name: &str) -> pb::Relation {
    relation(pb::relation::RelType::Read(pb::Read {
        read_type: Some(pb::read::ReadType::NamedTable(pb::read::NamedTable {
            unparsed_identifier: name.to_owned(),
            options: HashMap::new(),
        })),
        is_streaming: false,
    }))
}

/// A file read by Spark itself: CSV with a header row and inferred column types, or Parquet.
pub(crate) fn read_file(path: &str) -> pb::Relation {
    let lower = path.to_ascii_lowercase();
    let parquet = lower.ends_with(".parquet") || lower.ends_with(".pq");
    let options = if parquet {
        HashMap::new()
    } else {
        [("header", "true"), ("inferSchema", "true")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    };
    relation(pb::relation::RelType::Read(pb::Read {
        read_type: Some(pb::read::ReadType::DataSource(pb::read::DataSource {
            format: Some(if parquet { "parquet" } else { "csv" }.to_owned()),
            schema: None,
            options,
            paths: vec![path.to_owned()],
            predicates: Vec::new(),
            source_name: None,
        })),
        is_streaming: false,
    }))
}

/// Rows of `input` whose uniform draw falls in [lower, upper): one part of `randomSplit`, with the
/// row order made deterministic first, as PySpark's `randomSplit` does.
pub(crate) fn sample(input: pb::Relation, lower: f64, upper: f64, seed: i64) -> pb::Relation {
    sample_with(input, lower, upper, false, seed)
}

/// `sample(withReplacement, fraction = upper - lower, seed)`; with replacement, each row is drawn a
/// Poisson number of times (so a fraction above 1 resamples).
pub(crate) fn sample_with(
    input: pb::Relation,
    lower: f64,
    upper: f64,
    with_replacement: bool,
    seed: i64,
) -> pb::Relation {
    relation(pb::relation::RelType::Sample(Box::new(pb::Sample {
        input: Some(Box::new(input)),
        lower_bound: lower,
        upper_bound: upper,
        with_replacement: Some(with_replacement),
        seed: Some(seed),
        deterministic_order: true,
    })))
}

/// `SELECT expressions FROM input`.
pub(crate) fn project(input: pb::Relation, expressions: Vec<pb::Expression>) -> pb::Relation {
    relation(pb::relation::RelType::Project(Box::new(pb::Project { input: Some(Box::new(input)), expressions })))
}

/// The first `n` rows.
pub(crate) fn limit(input: pb::Relation, n: i32) -> pb::Relation {
    relation(pb::relation::RelType::Limit(Box::new(pb::Limit { input: Some(Box::new(input)), limit: n })))
}

fn expression(expr_type: pb::expression::ExprType) -> pb::Expression {
    pb::Expression { common: None, expr_type: Some(expr_type) }
}

/// A column by name.
pub(crate) fn col(name: &str) -> pb::Expression {
    expression(pb::expression::ExprType::UnresolvedAttribute(pb::expression::UnresolvedAttribute {
        unparsed_identifier: format!("`{}`", name.replace('`', "``")),
        plan_id: None,
        is_metadata_column: None,
    }))
}

/// A function call.
pub(crate) fn call(name: &str, arguments: Vec<pb::Expression>) -> pb::Expression {
    expression(pb::expression::ExprType::UnresolvedFunction(pb::expression::UnresolvedFunction {
        function_name: name.to_owned(),
        arguments,
        is_distinct: false,
        is_user_defined_function: false,
        is_internal: None,
    }))
}

/// `expr AS name`.
pub(crate) fn alias(expr: pb::Expression, name: &str) -> pb::Expression {
    expression(pb::expression::ExprType::Alias(Box::new(pb::expression::Alias {
        expr: Some(Box::new(expr)),
        name: vec![name.to_owned()],
        metadata: None,
    })))
}

/// An ML vector column as an array of doubles (`pyspark.ml.functions.vector_to_array`).
pub(crate) fn vector_to_array(column: &str) -> pb::Expression {
    call("vector_to_array", vec![col(column), literal(&Param::Str("float64".into()))])
}

/// A parameter value of an ML operator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Strs(Vec<String>),
    Ints(Vec<i64>),
}

fn int_literal(v: i64) -> pb::expression::literal::LiteralType {
    match i32::try_from(v) {
        Ok(i) => pb::expression::literal::LiteralType::Integer(i),
        Err(_) => pb::expression::literal::LiteralType::Long(v),
    }
}

fn data_type(kind: pb::data_type::Kind) -> pb::DataType {
    pb::DataType { kind: Some(kind) }
}

#[allow(deprecated)] // `Array.element_type` is deprecated in favour of `data_type`; servers still read it.
fn literal(p: &Param) -> pb::Expression {
    use pb::expression::literal::LiteralType as L;
    let array = |elements: Vec<pb::expression::Literal>, element: pb::data_type::Kind| {
        L::Array(pb::expression::literal::Array { element_type: Some(data_type(element)), elements })
    };
    let lit = |t: L| pb::expression::Literal { literal_type: Some(t), data_type: None };
    let value = match p {
        Param::Str(s) => L::String(s.clone()),
        Param::Int(i) => int_literal(*i),
        Param::Double(d) => L::Double(*d),
        Param::Bool(b) => L::Boolean(*b),
        Param::Strs(v) => array(
            v.iter().map(|s| lit(L::String(s.clone()))).collect(),
            pb::data_type::Kind::String(pb::data_type::String::default()),
        ),
        Param::Ints(v) => {
            let wide = v.iter().any(|i| i32::try_from(*i).is_err());
            let kind = if wide {
                pb::data_type::Kind::Long(pb::data_type::Long::default())
            } else {
                pb::data_type::Kind::Integer(pb::data_type::Integer::default())
            };
            array(v.iter().map(|&i| lit(if wide { L::Long(i) } else { int_literal(i) })).collect(), kind)
        }
    };
    expression(pb::expression::ExprType::Literal(lit(value)))
}

fn params(list: &[(&str, Param)]) -> pb::MlParams {
    pb::MlParams {
        params: list
            .iter()
            .filter_map(|(k, v)| match literal(v).expr_type {
                Some(pb::expression::ExprType::Literal(l)) => Some(((*k).to_owned(), l)),
                _ => None,
            })
            .collect(),
    }
}

/// An ML operator by its JVM class, with a fresh uid as PySpark makes them.
fn operator(class: &str, kind: pb::ml_operator::OperatorType) -> pb::MlOperator {
    let short = class.rsplit('.').next().unwrap_or(class);
    let uid = format!("{short}_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    pb::MlOperator { name: class.to_owned(), uid, r#type: kind as i32 }
}

/// Fits estimator `class` with `list` on `dataset`.
pub(crate) fn fit(class: &str, list: &[(&str, Param)], dataset: pb::Relation) -> pb::MlCommand {
    pb::MlCommand {
        command: Some(pb::ml_command::Command::Fit(pb::ml_command::Fit {
            estimator: Some(operator(class, pb::ml_operator::OperatorType::Estimator)),
            params: Some(params(list)),
            dataset: Some(dataset),
        })),
    }
}

/// Calls `methods` one after the other on the server-side object `model` (e.g. `summary`, then
/// `totalIterations`), as PySpark's `_call_java` does through Spark Connect.
pub(crate) fn fetch(model: &str, methods: &[&str]) -> pb::MlCommand {
    pb::MlCommand {
        command: Some(pb::ml_command::Command::Fetch(pb::Fetch {
            obj_ref: Some(pb::ObjectRef { id: model.to_owned() }),
            methods: methods.iter().map(|m| pb::fetch::Method { method: (*m).to_owned(), args: Vec::new() }).collect(),
        })),
    }
}

/// Calls `method(argument)` on the server-side object `model` (e.g. `predictRaw` of a vector).
pub(crate) fn fetch_with(model: &str, method: &str, argument: pb::expression::Literal) -> pb::MlCommand {
    let args = vec![pb::fetch::method::Args { args_type: Some(pb::fetch::method::args::ArgsType::Param(argument)) }];
    pb::MlCommand {
        command: Some(pb::ml_command::Command::Fetch(pb::Fetch {
            obj_ref: Some(pb::ObjectRef { id: model.to_owned() }),
            methods: vec![pb::fetch::Method { method: method.to_owned(), args }],
        })),
    }
}

/// A method of the server-side object `model` that returns a DataFrame (e.g. an Imputer's
/// `surrogateDF`), as a relation.
pub(crate) fn fetch_relation(model: &str, method: &str) -> pb::Relation {
    relation(pb::relation::RelType::MlRelation(Box::new(pb::MlRelation {
        ml_type: Some(pb::ml_relation::MlType::Fetch(pb::Fetch {
            obj_ref: Some(pb::ObjectRef { id: model.to_owned() }),
            methods: vec![pb::fetch::Method { method: method.to_owned(), args: Vec::new() }],
        })),
        model_summary_dataset: None,
    })))
}

/// A dense ML vector as a literal, the way PySpark sends one: a struct of the `VectorUDT`
/// (type 1 = dense, size and indices null, the values).
#[allow(deprecated)] // `Struct.struct_type` is deprecated; servers still read the UDT from it.
pub(crate) fn dense_vector(values: &[f64]) -> pb::expression::Literal {
    use pb::expression::literal::{LiteralType as L, SpecializedArray, Struct, specialized_array::ValueType};
    let lit = |t: L| pb::expression::Literal { literal_type: Some(t), data_type: None };
    let null = || lit(L::Null(data_type(pb::data_type::Kind::Null(pb::data_type::Null::default()))));
    let udt = pb::data_type::Udt {
        r#type: "udt".into(),
        jvm_class: Some("org.apache.spark.ml.linalg.VectorUDT".into()),
        ..Default::default()
    };
    let doubles = SpecializedArray { value_type: Some(ValueType::Doubles(pb::Doubles { values: values.to_vec() })) };
    lit(L::Struct(Struct {
        struct_type: Some(data_type(pb::data_type::Kind::Udt(Box::new(udt)))),
        elements: vec![lit(L::Byte(1)), null(), null(), lit(L::SpecializedArray(doubles))],
    }))
}

/// Evaluator `class` with `list` on `dataset`.
pub(crate) fn evaluate(class: &str, list: &[(&str, Param)], dataset: pb::Relation) -> pb::MlCommand {
    pb::MlCommand {
        command: Some(pb::ml_command::Command::Evaluate(pb::ml_command::Evaluate {
            evaluator: Some(operator(class, pb::ml_operator::OperatorType::Evaluator)),
            params: Some(params(list)),
            dataset: Some(dataset),
        })),
    }
}

/// A fitted model (by its server-side reference) applied to `input`.
pub(crate) fn transform_with_model(model: &str, input: pb::Relation) -> pb::Relation {
    ml_transform(pb::ml_relation::transform::Operator::ObjRef(pb::ObjectRef { id: model.to_owned() }), None, input)
}

/// Transformer `class` (one that needs no fitting, e.g. VectorAssembler) applied to `input`.
pub(crate) fn transform_with(class: &str, list: &[(&str, Param)], input: pb::Relation) -> pb::Relation {
    ml_transform(
        pb::ml_relation::transform::Operator::Transformer(operator(class, pb::ml_operator::OperatorType::Transformer)),
        Some(params(list)),
        input,
    )
}

fn ml_transform(
    operator: pb::ml_relation::transform::Operator,
    params: Option<pb::MlParams>,
    input: pb::Relation,
) -> pb::Relation {
    relation(pb::relation::RelType::MlRelation(Box::new(pb::MlRelation {
        ml_type: Some(pb::ml_relation::MlType::Transform(Box::new(pb::ml_relation::Transform {
            operator: Some(operator),
            input: Some(Box::new(input)),
            params,
        }))),
        model_summary_dataset: None,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_sent_as_pyspark_sends_them() {
        let p = params(&[
            ("maxIter", Param::Int(100)),
            ("seed", Param::Int(1 << 40)),
            ("layers", Param::Ints(vec![28, 64, 2])),
            ("inputCols", Param::Strs(vec!["a".into(), "b".into()])),
        ]);
        use pb::expression::literal::LiteralType as L;
        assert_eq!(p.params["maxIter"].literal_type, Some(L::Integer(100)));
        assert_eq!(p.params["seed"].literal_type, Some(L::Long(1 << 40)));
        match &p.params["layers"].literal_type {
            Some(L::Array(a)) => assert_eq!(
                a.elements.iter().map(|e| e.literal_type.clone()).collect::<Vec<_>>(),
                vec![Some(L::Integer(28)), Some(L::Integer(64)), Some(L::Integer(2))]
            ),
            other => panic!("layers sent as {other:?}"),
        }
        assert!(matches!(&p.params["inputCols"].literal_type, Some(L::Array(a)) if a.elements.len() == 2));
    }
}
