use ciphergpt_compiler::frontend::dsl::{load_str, WeightSource};
#[test]
fn show() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/gpt2.cgpt")).unwrap();
    let o: Vec<(String,String)> = [("layers","1"),("width","24"),("heads","3"),("vocab","40"),("positions","16")].iter().map(|(a,b)|(a.to_string(),b.to_string())).collect();
    let mut o5 = o.clone(); o5[2].1 = "5".into();
    for (from, to, ov) in [
        ("weight wpe : [positions, width] = ", "weight wpe : [positions, width] ", &o),
        ("h = embedding(input_ids, wte, wpe)", "h = embedding(input_ids, wte, wep)", &o),
        ("h = h + linear(up, out_w, out_b)", "h = h + linear(h, out_w, out_b)", &o),
        ("", "", &o5),
    ] {
        let bad = text.replacen(from, to, 1);
        match load_str(&bad, "gpt2.cgpt", &WeightSource::Seed(1), ov) { Ok(_) => println!("OK?? {from} -> {to}"), Err(e) => println!("{e}") }
    }
    match load_str(&text, "gpt2.cgpt", &WeightSource::Safetensors("../models/tiny-trained.safetensors".into()), &[]) { Ok(_) => println!("OK??"), Err(e) => println!("{e}") }
}
