//! Sector encryption and decryption per core: the batched AES-256-XTS used
//! by callvault against the unbatched `xts-mode` crate as baseline. Compare
//! with `openssl speed -evp aes-256-xts -bytes 4096` on the same machine
//! (bench/run.sh prints both).

use aes::Aes256;
use aes::cipher::{Array, KeyInit};
use callvault::contents::SectorCipher;
use callvault::keys::{LABEL_FILE_CONTENTS, derive64};
use callvault::secret::{Key64, MasterKey};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The unbatched `xts-mode` crate (a dev-dependency), as the baseline.
fn reference_encrypt(key: &Key64, index: u64, sector: &mut [u8]) {
    let k = key.expose_secret();
    let (Ok(k1), Ok(k2)) = (Array::try_from(&k[..32]), Array::try_from(&k[32..])) else {
        return;
    };
    let xts = xts_mode::Xts128::new(Aes256::new(&k1), Aes256::new(&k2));
    xts.encrypt_sector(sector, xts_mode::get_tweak_default(u128::from(index)));
}

fn sectors(c: &mut Criterion) {
    let key = derive64(&MasterKey::generate().expect("random"), LABEL_FILE_CONTENTS, &[1; 16]);
    let cipher = SectorCipher::new(&key).expect("distinct halves");
    let mut g = c.benchmark_group("aes-256-xts");
    g.throughput(Throughput::Bytes(4096));
    let mut sector = [7u8; 4096];
    g.bench_function("encrypt 4 KiB sector (callvault, batched)", |b| b.iter(|| cipher.encrypt(3, &mut sector)));
    g.bench_function("decrypt 4 KiB sector (callvault, batched)", |b| b.iter(|| cipher.decrypt(3, &mut sector)));
    g.bench_function("encrypt 4 KiB sector (xts-mode, baseline)", |b| {
        b.iter(|| reference_encrypt(&key, 3, &mut sector))
    });
    g.throughput(Throughput::Bytes(1 << 20));
    let mut run = vec![9u8; 1 << 20];
    g.bench_function("encrypt 1 MiB run (callvault)", |b| b.iter(|| cipher.encrypt_run(0, &mut run)));
    g.bench_function("decrypt 1 MiB run (callvault)", |b| b.iter(|| cipher.decrypt_run(0, &mut run)));
    g.finish();
}

criterion_group!(benches, sectors);
criterion_main!(benches);
