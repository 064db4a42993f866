use super::*;

#[test]
fn downsampling_keeps_peaks_and_the_last_point() {
    let points: Vec<(f64, Option<f64>)> = (0..2400)
        .map(|i| (i as f64, Some(if i == 1000 { 99.0 } else { 1.0 })))
        .collect();
    let d = downsample(&points, MAX_POINTS, Agg::Max);
    assert!(d.len() <= MAX_POINTS);
    assert!(d.iter().any(|p| p.1 == Some(99.0)));
    assert_eq!(d.last(), points.last());
    let gaps = [(0.0, Some(1.0)), (1.0, None), (2.0, Some(2.0))];
    assert_eq!(segments(&gaps).len(), 2);
    assert_eq!(y_range(5.0, 5.0, true), (4.0, 6.0));
    assert_eq!(y_range(f64::NAN, 1.0, true), (0.0, 1.08));
    assert_eq!(tick(0.5), "0.5");
    assert_eq!(tick(2.0), "2");
    assert_eq!(tick(1500.0), "1,500");
}
