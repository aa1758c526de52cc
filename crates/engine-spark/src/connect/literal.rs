//! Values in Spark Connect's literals, as ML `Fetch` returns them: numbers, arrays, and the ML
//! vector and matrix structs (`VectorUDT`, `MatrixUDT`) PySpark decodes.

use spark_connect_proto as pb;

use pb::expression::literal::LiteralType as L;

/// Elements of an array literal.
fn elements(l: &pb::expression::Literal) -> Option<&[pb::expression::Literal]> {
    match &l.literal_type {
        Some(L::Array(a)) => Some(&a.elements),
        _ => None,
    }
}

/// Doubles from a double array or an ML vector (dense or sparse).
pub(super) fn doubles(l: &pb::expression::Literal) -> Option<Vec<f64>> {
    use pb::expression::literal::specialized_array::ValueType;
    match &l.literal_type {
        Some(L::SpecializedArray(a)) => match &a.value_type {
            Some(ValueType::Doubles(d)) => Some(d.values.clone()),
            _ => None,
        },
        Some(L::Array(a)) => a
            .elements
            .iter()
            .map(|e| match e.literal_type {
                Some(L::Double(d)) => Some(d),
                _ => None,
            })
            .collect(),
        // VectorUDT: (type: 0 sparse / 1 dense, size, indices, values).
        Some(L::Struct(st)) if st.elements.len() == 4 => {
            let values = doubles(&st.elements[3])?;
            match st.elements[0].literal_type {
                Some(L::Byte(1)) => Some(values),
                Some(L::Byte(0)) => {
                    let size = int(&st.elements[1])? as usize;
                    let mut dense = vec![0.0; size];
                    for (i, v) in ints(&st.elements[2])?.into_iter().zip(values) {
                        *dense.get_mut(i as usize)? = v;
                    }
                    Some(dense)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// An ML matrix (MatrixUDT: type 0 sparse / 1 dense, rows, columns, column pointers, row
/// indices, values, transposed), row-major.
pub(super) fn matrix(l: &pb::expression::Literal) -> Option<(usize, usize, Vec<f64>)> {
    let Some(L::Struct(st)) = &l.literal_type else { return None };
    let e = &st.elements;
    if e.len() != 7 {
        return None;
    }
    let (rows, cols) = (int(&e[1])? as usize, int(&e[2])? as usize);
    let values = doubles(&e[5])?;
    let transposed = matches!(e[6].literal_type, Some(L::Boolean(true)));
    let mut out = vec![0.0; rows * cols];
    match e[0].literal_type {
        Some(L::Byte(1)) if values.len() == rows * cols => {
            for r in 0..rows {
                for c in 0..cols {
                    out[r * cols + c] = if transposed { values[r * cols + c] } else { values[c * rows + r] };
                }
            }
        }
        // Compressed columns (rows when transposed).
        Some(L::Byte(0)) => {
            let (pointers, indices) = (ints(&e[3])?, ints(&e[4])?);
            for major in 0..pointers.len().saturating_sub(1) {
                for k in pointers[major] as usize..pointers[major + 1] as usize {
                    let minor = *indices.get(k)? as usize;
                    let (r, c) = if transposed { (major, minor) } else { (minor, major) };
                    *out.get_mut(r * cols + c)? = *values.get(k)?;
                }
            }
        }
        _ => return None,
    }
    Some((rows, cols, out))
}

pub(super) fn int(l: &pb::expression::Literal) -> Option<i64> {
    match l.literal_type {
        Some(L::Integer(i)) => Some(i64::from(i)),
        Some(L::Long(i)) => Some(i),
        _ => None,
    }
}

pub(super) fn ints(l: &pb::expression::Literal) -> Option<Vec<i64>> {
    use pb::expression::literal::specialized_array::ValueType;
    match &l.literal_type {
        Some(L::SpecializedArray(a)) => match &a.value_type {
            Some(ValueType::Ints(v)) => Some(v.values.iter().map(|&i| i64::from(i)).collect()),
            Some(ValueType::Longs(v)) => Some(v.values.clone()),
            _ => None,
        },
        _ => elements(l)?.iter().map(int).collect(),
    }
}

pub(super) fn strings(l: &pb::expression::Literal) -> Option<Vec<String>> {
    use pb::expression::literal::specialized_array::ValueType;
    match &l.literal_type {
        Some(L::SpecializedArray(a)) => match &a.value_type {
            Some(ValueType::Strings(v)) => Some(v.values.clone()),
            _ => None,
        },
        _ => elements(l)?
            .iter()
            .map(|e| match &e.literal_type {
                Some(L::String(s)) => Some(s.clone()),
                _ => None,
            })
            .collect(),
    }
}

pub(super) fn string_arrays(l: &pb::expression::Literal) -> Option<Vec<Vec<String>>> {
    elements(l)?.iter().map(strings).collect()
}

/// The value an ML command returned, if it returned one.
pub(super) fn param(result: &pb::MlCommandResult) -> Option<&pb::expression::Literal> {
    match &result.result_type {
        Some(pb::ml_command_result::ResultType::Param(l)) => Some(l),
        _ => None,
    }
}

pub(super) fn double(l: &pb::expression::Literal) -> Option<f64> {
    match l.literal_type {
        Some(L::Double(d)) => Some(d),
        Some(L::Float(f)) => Some(f64::from(f)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrices_come_back_row_major() {
        let lit = |t: L| pb::expression::Literal { literal_type: Some(t), data_type: None };
        let doubles = |v: &[f64]| {
            let d = pb::Doubles { values: v.to_vec() };
            use pb::expression::literal::specialized_array::ValueType;
            lit(L::SpecializedArray(pb::expression::literal::SpecializedArray {
                value_type: Some(ValueType::Doubles(d)),
            }))
        };
        let ints = |v: &[i32]| {
            let d = pb::Ints { values: v.to_vec() };
            use pb::expression::literal::specialized_array::ValueType;
            lit(L::SpecializedArray(pb::expression::literal::SpecializedArray { value_type: Some(ValueType::Ints(d)) }))
        };
        #[allow(deprecated)]
        let m = |e: Vec<pb::expression::Literal>| {
            lit(L::Struct(pb::expression::literal::Struct { struct_type: None, elements: e }))
        };
        // [[1, 2, 3], [4, 5, 6]] column-major, then as compressed sparse columns.
        let dense = m(vec![
            lit(L::Byte(1)),
            lit(L::Integer(2)),
            lit(L::Integer(3)),
            lit(L::Integer(0)),
            lit(L::Integer(0)),
            doubles(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]),
            lit(L::Boolean(false)),
        ]);
        assert_eq!(matrix(&dense), Some((2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])));
        let sparse = m(vec![
            lit(L::Byte(0)),
            lit(L::Integer(2)),
            lit(L::Integer(3)),
            ints(&[0, 1, 1, 3]),
            ints(&[1, 0, 1]),
            doubles(&[4.0, 3.0, 6.0]),
            lit(L::Boolean(false)),
        ]);
        assert_eq!(matrix(&sparse), Some((2, 3, vec![0.0, 0.0, 3.0, 4.0, 0.0, 6.0])));
        let vector = m(vec![lit(L::Byte(0)), lit(L::Integer(4)), ints(&[1, 3]), doubles(&[0.5, 2.0])]);
        assert_eq!(super::doubles(&vector), Some(vec![0.0, 0.5, 0.0, 2.0]));
    }
}
