//! Eigenvalues of a symmetric operator. In: a dense symmetric matrix, or a
//! function computing the matrix times a vector. Out: a [`Spectrum`] —
//! ascending eigenvalues with quadrature weights and the eigenvector of the
//! smallest. The dense path and the small tridiagonal matrices of Lanczos
//! are solved by `nalgebra`'s symmetric eigensolver.

use nalgebra::{DMatrix, SymmetricEigen};

/// Ascending eigenvalues (or Ritz values) of a symmetric operator.
#[derive(Clone, Debug)]
pub struct Spectrum {
    pub values: Vec<f64>,
    /// A weight per value, summing to 1: the share of the spectrum each
    /// stands for (`1/n` each when dense; the Lanczos quadrature weights
    /// — squared first components of the tridiagonal's eigenvectors —
    /// otherwise, which estimate the spectral density).
    pub weights: Vec<f64>,
    /// A unit eigenvector (or Ritz vector) of the smallest value.
    pub lowest: Vec<f64>,
}

/// The eigenvalues of the symmetric `n`×`n` row-major `matrix` (its
/// symmetric part, if rounding left it slightly asymmetric).
pub fn dense(n: usize, matrix: &[f64]) -> Result<Spectrum, String> {
    if matrix.len() != n * n || n == 0 {
        return Err(format!(
            "a {n}x{n} matrix needs {} values, found {}",
            n * n,
            matrix.len()
        ));
    }
    if matrix.iter().any(|x| !x.is_finite()) {
        return Err("the Hessian has a NaN or infinite entry".into());
    }
    let a = DMatrix::from_row_slice(n, n, matrix);
    let symmetric = (&a + a.transpose()) * 0.5;
    let eigen = SymmetricEigen::new(symmetric);
    let order = ascending(eigen.eigenvalues.as_slice());
    Ok(Spectrum {
        values: order.iter().map(|&i| eigen.eigenvalues[i]).collect(),
        weights: vec![1.0 / n as f64; n],
        lowest: eigen.eigenvectors.column(order[0]).iter().copied().collect(),
    })
}

/// Indices of `values` in ascending order.
fn ascending(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order
}

/// A deterministic random ±1 vector of length `n`, normalized: Lanczos's
/// start (a Rademacher probe, so the quadrature weights estimate the
/// spectral density).
pub fn start_vector(n: usize, seed: u64) -> Vec<f64> {
    let scale = 1.0 / (n as f64).sqrt();
    (0..n)
        .map(|i| {
            if crate::interp::random::uniform(seed, 0, 0x4e55_1a4e, i as u64) < 0.5 {
                -scale
            } else {
                scale
            }
        })
        .collect()
}

/// Lanczos iteration from `start` with full reorthogonalization, at most
/// `steps` products (and at most the dimension): the Ritz values of the
/// Krylov space, whose extremes converge to the operator's extreme
/// eigenvalues first. Stops early when the space is invariant (then the
/// Ritz values are eigenvalues).
pub fn lanczos(
    start: &[f64],
    steps: usize,
    mut product: impl FnMut(&[f64]) -> Result<Vec<f64>, String>,
) -> Result<Spectrum, String> {
    let n = start.len();
    let length = super::norm(start);
    if n == 0 || length == 0.0 || !length.is_finite() {
        return Err("Lanczos needs a non-zero start vector".into());
    }
    let steps = steps.clamp(1, n);
    let mut basis: Vec<Vec<f64>> = vec![start.iter().map(|x| x / length).collect()];
    let mut alpha: Vec<f64> = Vec::new();
    let mut beta: Vec<f64> = Vec::new();
    let mut scale = 0.0f64;
    for j in 0..steps {
        let mut w = product(&basis[j])?;
        if w.len() != n || w.iter().any(|x| !x.is_finite()) {
            return Err("a Hessian-vector product is NaN or infinite".into());
        }
        let a = super::dot(&basis[j], &w);
        alpha.push(a);
        // Full reorthogonalization, twice ("twice is enough"): against
        // every basis vector, which also removes the a·q_j and b·q_{j-1}
        // terms of the three-term recurrence.
        for _ in 0..2 {
            for q in &basis {
                let c = super::dot(q, &w);
                w.iter_mut().zip(q).for_each(|(x, y)| *x -= c * y);
            }
        }
        let b = super::norm(&w);
        scale = scale.max(a.abs()).max(b);
        if j + 1 == steps || b <= 1e-10 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        beta.push(b);
        basis.push(w.iter().map(|x| x / b).collect());
    }
    let k = alpha.len();
    let mut t = DMatrix::<f64>::zeros(k, k);
    for i in 0..k {
        t[(i, i)] = alpha[i];
        if i + 1 < k {
            t[(i, i + 1)] = beta[i];
            t[(i + 1, i)] = beta[i];
        }
    }
    let eigen = SymmetricEigen::new(t);
    let order = ascending(eigen.eigenvalues.as_slice());
    let weights: Vec<f64> = order.iter().map(|&i| eigen.eigenvectors[(0, i)].powi(2)).collect();
    let s = eigen.eigenvectors.column(order[0]);
    let mut lowest = vec![0.0; n];
    for (q, c) in basis.iter().zip(s.iter()) {
        lowest.iter_mut().zip(q).for_each(|(x, y)| *x += c * y);
    }
    let length = super::norm(&lowest);
    lowest.iter_mut().for_each(|x| *x /= length);
    Ok(Spectrum {
        values: order.iter().map(|&i| eigen.eigenvalues[i]).collect(),
        weights,
        lowest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A symmetric matrix with eigenvalues `values` and pseudo-random
    /// eigenvectors: Q diag(values) Q^T with Q from a QR decomposition.
    fn with_eigenvalues(values: &[f64], seed: u64) -> DMatrix<f64> {
        let n = values.len();
        let random = DMatrix::from_fn(n, n, |i, j| {
            crate::interp::random::uniform(seed, 1, 2, (i * n + j) as u64) - 0.5
        });
        let q = random.qr().q();
        &q * DMatrix::from_diagonal(&nalgebra::DVector::from_row_slice(values)) * q.transpose()
    }

    fn times(matrix: &DMatrix<f64>) -> impl FnMut(&[f64]) -> Result<Vec<f64>, String> + '_ {
        move |v| {
            Ok((matrix * nalgebra::DVector::from_row_slice(v))
                .iter()
                .copied()
                .collect())
        }
    }

    #[test]
    fn dense_finds_every_eigenvalue_and_the_lowest_vector() {
        let values = [-3.0, -0.5, 0.0, 1.0, 2.0, 7.5];
        let m = with_eigenvalues(&values, 3);
        let row_major: Vec<f64> = m.transpose().iter().copied().collect();
        let spectrum = dense(6, &row_major).unwrap();
        for (found, expected) in spectrum.values.iter().zip(values) {
            assert!((found - expected).abs() < 1e-10, "{found} vs {expected}");
        }
        // M v = -3 v for the lowest vector.
        let v = nalgebra::DVector::from_row_slice(&spectrum.lowest);
        let residual = (&m * &v - &v * -3.0).norm();
        assert!(residual < 1e-10, "residual {residual}");
        assert!((spectrum.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn dense_rejects_a_wrong_size_and_non_finite_entries() {
        assert!(dense(2, &[1.0, 2.0, 3.0]).is_err());
        assert!(dense(1, &[f64::NAN]).is_err());
        assert!(dense(0, &[]).is_err());
    }

    #[test]
    fn lanczos_with_as_many_steps_as_dimensions_is_exact() {
        let values: Vec<f64> = (0..20).map(|i| (i as f64 - 6.5) * 0.75).collect();
        let m = with_eigenvalues(&values, 5);
        let spectrum = lanczos(&start_vector(20, 1), 20, times(&m)).unwrap();
        assert_eq!(spectrum.values.len(), 20);
        for (found, expected) in spectrum.values.iter().zip(&values) {
            assert!((found - expected).abs() < 1e-8, "{found} vs {expected}");
        }
        // 7 of the 20 are negative; the quadrature weights of the positive
        // ones estimate the share 13/20 from one probe.
        let positive: f64 = spectrum
            .values
            .iter()
            .zip(&spectrum.weights)
            .filter(|(v, _)| **v > 0.0)
            .map(|(_, w)| w)
            .sum();
        assert!((positive - 0.65).abs() < 0.25, "estimated share {positive}");
    }

    #[test]
    fn lanczos_finds_separated_extremes_in_few_steps() {
        // A bulk in [0, 1] and two outliers: the extremes converge quickly.
        let mut values = vec![-4.0];
        values.extend((0..198).map(|i| i as f64 / 197.0));
        values.push(9.0);
        let m = with_eigenvalues(&values, 8);
        let spectrum = lanczos(&start_vector(200, 2), 30, times(&m)).unwrap();
        assert_eq!(spectrum.values.len(), 30);
        assert!((spectrum.values[0] + 4.0).abs() < 1e-8, "{}", spectrum.values[0]);
        assert!((spectrum.values[29] - 9.0).abs() < 1e-8, "{}", spectrum.values[29]);
        let v = nalgebra::DVector::from_row_slice(&spectrum.lowest);
        let residual = (&m * &v - &v * -4.0).norm();
        assert!(residual < 1e-6, "residual {residual}");
    }

    #[test]
    fn lanczos_stops_at_an_invariant_space() {
        // The identity: one step spans an invariant space.
        let m = DMatrix::<f64>::identity(5, 5);
        let spectrum = lanczos(&start_vector(5, 0), 5, times(&m)).unwrap();
        assert_eq!(spectrum.values.len(), 1);
        assert!((spectrum.values[0] - 1.0).abs() < 1e-12);
    }
}
