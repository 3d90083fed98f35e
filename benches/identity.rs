//! Identity costs: a directory lookup among 100,000 patients, one keyed hash (HMAC-SHA256) per
//! identifier, loading the directory file, and importing a 100,000-row patient CSV.
//!
//! Run with `cargo bench --bench identity`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;

use careline::config::Identifier;
use careline::identity::{
    Claim, DateOfBirth, HashedFileDirectory, ImportOptions, Pepper, Verification, import,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::civil::{Date, date};

const PATIENTS: usize = 100_000;
const TODAY: Date = date(2026, 6, 1);

/// A deterministic patient export: birthdays spread over 1930-2020 (about three patients per
/// date of birth, as in a real population), every identifier present.
fn patient_csv() -> String {
    let first = date(1930, 1, 1);
    let days = i64::from((date(2020, 12, 31) - first).get_days());
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut csv = String::with_capacity(PATIENTS * 48);
    csv.push_str("patient_ref,dob,mrn,zip,ssn4\n");
    for n in 0..PATIENTS {
        let offset = i64::try_from(next() % u64::try_from(days).expect("positive")).expect("fits");
        let dob = first
            .checked_add(jiff::Span::new().days(offset))
            .expect("within range");
        writeln!(
            csv,
            "P{n:07},{dob},{:08},{:05},{:04}",
            next() % 100_000_000,
            next() % 100_000,
            next() % 10_000
        )
        .expect("writing to a String");
    }
    csv.push_str("P9999999,1970-01-31,00123456,60601,1234\n");
    csv
}

fn pepper() -> Pepper {
    Pepper::new("benchmark-pepper-0123456789abcdef0123456789").expect("long enough")
}

fn options() -> ImportOptions {
    ImportOptions {
        today: TODAY,
        skip_invalid: false,
    }
}

fn identity(c: &mut Criterion) {
    let csv = patient_csv();
    let pepper = pepper();
    let mut file = Vec::new();
    import(csv.as_bytes(), &pepper, &options(), &mut file).expect("the generated CSV imports");
    let directory =
        HashedFileDirectory::read(file.as_slice(), Arc::new(pepper.clone())).expect("loads");
    assert_eq!(directory.len(), PATIENTS + 1);

    let known = Claim::from_keyed(Identifier::Zip, "01311970", "60601", TODAY).expect("valid");
    assert!(matches!(
        directory.check(&known),
        Verification::Match { .. }
    ));
    let wrong_zip = Claim::from_keyed(Identifier::Zip, "01311970", "60602", TODAY).expect("valid");
    // Nobody in the generated export was born after 2020.
    let unknown_dob =
        Claim::from_keyed(Identifier::Zip, "06012026", "60601", TODAY).expect("valid");

    let mut lookup = c.benchmark_group("directory lookup, 100k patients");
    lookup.bench_function("match", |b| {
        b.iter(|| black_box(directory.check(black_box(&known))))
    });
    lookup.bench_function("wrong second identifier", |b| {
        b.iter(|| black_box(directory.check(black_box(&wrong_zip))))
    });
    lookup.bench_function("unknown date of birth", |b| {
        b.iter(|| black_box(directory.check(black_box(&unknown_dob))))
    });
    lookup.bench_function("parse keyed digits + match", |b| {
        b.iter(|| {
            let claim = Claim::from_keyed(Identifier::Zip, black_box("01311970"), "60601", TODAY)
                .expect("valid");
            black_box(directory.check(&claim))
        })
    });
    lookup.finish();

    let mut hashing = c.benchmark_group("HMAC-SHA256 per identifier");
    hashing.bench_function("zip", |b| {
        b.iter(|| black_box(pepper.identifier_hash(Identifier::Zip, black_box(b"60601"))))
    });
    hashing.bench_function("record pseudonym", |b| {
        b.iter(|| black_box(pepper.pseudonym(black_box("P000123"))))
    });
    hashing.bench_function("dob parse + normalise", |b| {
        b.iter(|| black_box(DateOfBirth::from_keyed(black_box("01311970"), TODAY)))
    });
    hashing.finish();

    let mut bulk = c.benchmark_group("directory file, 100k patients");
    bulk.sample_size(10);
    bulk.throughput(Throughput::Elements(PATIENTS as u64));
    bulk.bench_function("import CSV", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(file.len());
            let report =
                import(black_box(csv.as_bytes()), &pepper, &options(), &mut out).expect("imports");
            black_box(report.imported)
        })
    });
    bulk.bench_function("load", |b| {
        b.iter(|| {
            let loaded =
                HashedFileDirectory::read(black_box(file.as_slice()), Arc::new(pepper.clone()))
                    .expect("loads");
            black_box(loaded.len())
        })
    });
    bulk.finish();
}

criterion_group!(benches, identity);
criterion_main!(benches);
