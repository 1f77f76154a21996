//! Price European options three ways: the Black–Scholes kernel over a batch,
//! the closed form in f64 next to it, and a Monte Carlo estimate with its
//! error bar.
//!
//! ```text
//! cargo run --release --example black_scholes
//! ```

use pel::kernels::black_scholes::{BlackScholes, Market, OptionBatch, closed_form};
use pel::kernels::monte_carlo::MonteCarlo;
use pel::{Runtime, Target};

fn main() -> anyhow::Result<()> {
    let rt = Runtime::new()?;
    let market = Market::new(0.05, 0.2)?;

    // A strip of strikes around the spot, at three expiries, plus a million
    // random options so the batch is worth a device.
    let mut spot = Vec::new();
    let mut strike = Vec::new();
    let mut expiry = Vec::new();
    for &t in &[0.25f32, 1.0, 2.0] {
        for &k in &[80.0f32, 90.0, 100.0, 110.0, 120.0] {
            spot.push(100.0);
            strike.push(k);
            expiry.push(t);
        }
    }
    let shown = spot.len();
    for i in 0..1_000_000u32 {
        let f = (i as f32 * 0.618_034).fract();
        spot.push(50.0 + 100.0 * f);
        strike.push(60.0 + 80.0 * (1.0 - f));
        expiry.push(0.1 + 2.9 * (i as f32 * 0.414_213_5).fract());
    }
    let batch = OptionBatch::new(&rt, &spot, &strike, &expiry)?;
    let (call, put) = (rt.zeros::<f32>(spot.len()), rt.zeros::<f32>(spot.len()));
    let info = BlackScholes::new()?.run(&rt, Target::Auto, &batch, market, &call, &put)?;
    let (calls, puts) = (rt.read(&call)?, rt.read(&put)?);
    println!(
        "{} options priced on {} in {:.1} ms (S = 100, r = {}, σ = {}):\n",
        spot.len(),
        info.backend,
        info.elapsed.as_secs_f64() * 1e3,
        market.rate,
        market.volatility
    );
    println!(
        "{:>6} {:>6} {:>10} {:>12} {:>10} {:>12}",
        "T", "K", "call", "closed form", "put", "closed form"
    );
    let mut worst = 0.0f64;
    for i in 0..spot.len() {
        let (c, p) = closed_form(
            spot[i] as f64,
            strike[i] as f64,
            expiry[i] as f64,
            market.rate as f64,
            market.volatility as f64,
        );
        worst = worst
            .max((calls[i] as f64 - c).abs())
            .max((puts[i] as f64 - p).abs());
        if i < shown {
            println!(
                "{:>6} {:>6} {:>10.4} {:>12.4} {:>10.4} {:>12.4}",
                expiry[i], strike[i], calls[i], c, puts[i], p
            );
        }
    }
    println!("\nlargest difference from the closed form over the batch: {worst:.2e}");

    // Monte Carlo for one of them: S = 100, K = 100, T = 1.
    let paths = 1 << 22;
    let mc =
        MonteCarlo::new()?.price(&rt, Target::Auto, 100.0, 100.0, 1.0, 0.05, 0.2, paths, 42)?;
    let (c, p) = closed_form(100.0, 100.0, 1.0, 0.05, 0.2);
    println!("\nMonte Carlo, {paths} paths (Philox4x32-10; the same stream on every backend):");
    println!(
        "  call {:.4} ± {:.4} (closed form {c:.4}, {:+.1} standard errors)",
        mc.call,
        mc.call_stderr,
        (mc.call - c) / mc.call_stderr
    );
    println!(
        "  put  {:.4} ± {:.4} (closed form {p:.4}, {:+.1} standard errors)",
        mc.put,
        mc.put_stderr,
        (mc.put - p) / mc.put_stderr
    );
    Ok(())
}
