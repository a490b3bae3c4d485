//! False DTMF detections on real synthetic speech: `espeak-ng` reads texts in
//! several voices and languages, `sox` turns them into 8 kHz G.711 µ-law as a
//! recorder stores calls, and the detector must stay silent through all of it.
//!
//! Needs `espeak-ng` and `sox` on the PATH (CI installs both). Run alone with
//! `cargo test -p callvault --test tests dtmf_speech -- --nocapture` to see
//! the detections-per-hour figure.

use std::path::Path;
use std::process::Command;

use callvault::dtmf::Detector;

/// Texts with the words a caller says around card numbers: digits, dates,
/// amounts, names, in plain conversational sentences.
const ENGLISH: &str = "Hello, thank you for calling. My name is Margaret and I would like to pay my bill. \
    The account number is four seven one two, zero nine eight three, five five six six, one two three four. \
    The expiry date is the eleventh of September, twenty twenty nine, and the security code is seven eight nine. \
    Could you please confirm the amount? I think it was three hundred and forty two pounds and sixteen pence. \
    Oh, sorry, I have another card, it starts with five one, then four four, then nine nine, eight seven. \
    We moved last year to number sixty three, Elm Street, and the postcode is S W one A, two A A. \
    Yes, that is right. No, I don't think so. Well, maybe on Tuesday or Wednesday afternoon, around half past four. \
    The weather has been awful, hasn't it? Rain all week, and the children have been home from school since Monday. \
    Anyway, could you also check whether the refund of eighty nine ninety nine has gone through? \
    Thank you so much, you have been very helpful. Have a lovely evening, goodbye.";
const GERMAN: &str = "Guten Tag, hier spricht Herr Schneider. Ich möchte meine Rechnung bezahlen. \
    Die Kartennummer lautet vier neun zwei sieben, drei drei acht eins, null null fünf sechs, sieben sieben zwei zwei. \
    Gültig bis zum dreißigsten Juni zweitausendachtundzwanzig, die Prüfnummer ist sechs vier eins. \
    Können Sie mir bitte sagen, wie hoch der offene Betrag ist? Ich glaube, es waren hundertzwölf Euro fünfzig. \
    Wir wohnen in der Hauptstraße achtzehn, Postleitzahl eins null eins eins fünf, in Berlin. \
    Ja, genau. Nein, das stimmt nicht ganz. Vielleicht am Donnerstag gegen halb drei. Vielen Dank, auf Wiederhören.";
const FRENCH: &str = "Bonjour, je voudrais régler ma facture, s'il vous plaît. \
    Le numéro de la carte est quatre neuf sept un, deux deux huit cinq, six six zéro trois, neuf neuf quatre quatre. \
    La date d'expiration est le quinze mars deux mille trente, et le cryptogramme est trois cinq huit. \
    Pouvez-vous me confirmer le montant? Je crois que c'était deux cent quatre-vingt-dix-neuf euros. \
    Nous habitons au vingt-sept rue de la République, à Lyon. Oui, c'est ça. Non, pas du tout. \
    Peut-être mardi prochain, vers dix-sept heures. Merci beaucoup, bonne soirée, au revoir.";
const SPANISH: &str = "Buenas tardes, quería pagar mi factura. El número de la tarjeta es cuatro cinco cinco uno, \
    ocho ocho dos tres, siete siete seis seis, cero uno cero uno. Caduca en octubre de dos mil veintisiete, \
    y el código de seguridad es dos nueve cuatro. ¿Me puede confirmar el importe? Creo que eran ciento veinte euros. \
    Vivimos en la calle Mayor, número cuarenta y dos, en Madrid. Sí, exacto. No, gracias. Muchas gracias, adiós.";

/// (voice, words per minute, pitch 0..99, text)
const READINGS: &[(&str, u32, u32, &str)] = &[
    ("en", 160, 50, ENGLISH),
    ("en+f3", 160, 60, ENGLISH),
    ("en+m3", 140, 35, ENGLISH),
    ("en-us+f2", 190, 70, ENGLISH),
    ("en-gb-scotland+m1", 150, 40, ENGLISH),
    ("en+f4", 120, 85, ENGLISH),
    ("en-us+m7", 200, 20, ENGLISH),
    ("de", 160, 50, GERMAN),
    ("de+f2", 150, 65, GERMAN),
    ("fr-fr", 160, 50, FRENCH),
    ("fr-fr+f3", 170, 70, FRENCH),
    ("es", 160, 45, SPANISH),
    ("es+f1", 180, 75, SPANISH),
    ("it+m2", 150, 50, SPANISH),
];

/// G.711 µ-law decoding to full scale ±1.0 (16-bit scaling, as the daemon decodes).
fn ulaw(b: u8) -> f32 {
    let b = !b;
    let exp = ((b >> 4) & 7) as i32;
    let v = (((((b & 0x0F) as i32) << 3) + 0x84) << exp) - 0x84;
    (if b & 0x80 != 0 { -v } else { v }) as f32 / 32768.0
}

/// G.711 µ-law encoding of a full-scale sample.
fn ulaw_encode(x: f32) -> u8 {
    let mut v = (x * 32768.0).round().clamp(-32768.0, 32767.0) as i32;
    let sign = if v < 0 { 0x80 } else { 0 };
    v = v.abs().min(32635) + 0x84;
    let exp = (31 - (v as u32).leading_zeros() as i32 - 7).clamp(0, 7);
    !(sign | (exp << 4) | ((v >> (exp + 3)) & 0x0F)) as u8
}

/// Speaks `text` and returns it as decoded 8 kHz µ-law samples.
fn speak(dir: &Path, i: usize, voice: &str, wpm: u32, pitch: u32, text: &str) -> Vec<f32> {
    let wav = dir.join(format!("{i}.wav"));
    let ul = dir.join(format!("{i}.ul"));
    let ok = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &wpm.to_string(), "-p", &pitch.to_string(), "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng must be installed for this test (apt-get install espeak-ng)");
    assert!(ok.success(), "espeak-ng -v {voice} failed");
    let ok = Command::new("sox")
        .arg(&wav)
        .args(["-r", "8000", "-c", "1", "-e", "u-law", "-t", "raw"])
        .arg(&ul)
        .status()
        .expect("sox must be installed for this test (apt-get install sox)");
    assert!(ok.success(), "sox failed on {}", wav.display());
    std::fs::read(&ul).expect("read µ-law").into_iter().map(ulaw).collect()
}

#[test]
fn dtmf_speech_real_espeak_speech_gives_no_detections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut seconds, mut detections, mut masked) = (0.0f64, 0u64, 0u64);
    let mut report = Vec::new();
    // Each reading twice: as spoken, and 14 dB quieter (a distant talker).
    for (i, (voice, wpm, pitch, text)) in READINGS.iter().enumerate() {
        let x = speak(dir.path(), i, voice, *wpm, *pitch, text);
        for gain in [1.0f32, 0.2] {
            let mut d = Detector::new(8000);
            let mut found = Vec::new();
            for frame in x.chunks(160) {
                let frame: Vec<f32> = frame.iter().map(|v| v * gain).collect();
                d.push(&frame, &mut found);
            }
            d.finish(&mut found);
            seconds += x.len() as f64 / 8000.0;
            detections += d.tones();
            masked += found.iter().map(|r| r.end - r.start).sum::<u64>();
            if d.tones() > 0 {
                report.push(format!("{voice} x{gain}: {} tones, spans {found:?}", d.tones()));
            }
        }
    }
    // The same pipeline does hear digits: 16 keys of 50 ms (40 ms pauses
    // would do too) written over the first reading, 1 s apart.
    let mut x = speak(dir.path(), 99, "en", 160, 50, ENGLISH);
    let (rows, cols) = ([697.0f32, 770.0, 852.0, 941.0], [1209.0f32, 1336.0, 1477.0, 1633.0]);
    let amp = callvault::dtmf::DBM0_AMPLITUDE * 10f32.powf(-13.0 / 20.0); // -10 dBm0 pair
    for key in 0..16 {
        let at = 4000 + key * 8000;
        for n in 0..400 {
            let t = n as f32 / 8000.0;
            let v = amp
                * ((std::f32::consts::TAU * rows[key / 4] * t).sin()
                    + (std::f32::consts::TAU * cols[key % 4] * t).sin());
            x[at + n] = ulaw(ulaw_encode(v));
        }
    }
    let mut d = Detector::new(8000);
    let mut found = Vec::new();
    for frame in x.chunks(160) {
        d.push(frame, &mut found);
    }
    d.finish(&mut found);
    assert_eq!(d.tones(), 16, "the 16 keys written over speech: {found:?}");

    let per_hour = detections as f64 * 3600.0 / seconds;
    println!(
        "dtmf speech: {detections} detections in {:.1} min of espeak-ng speech (8 kHz µ-law): {per_hour:.2} per hour, \
         {:.2} s masked",
        seconds / 60.0,
        masked as f64 / 8000.0
    );
    assert!(seconds >= 600.0, "only {seconds:.0} s of speech generated; the figure needs at least 10 minutes");
    assert_eq!(detections, 0, "talk-off on real speech:\n{}", report.join("\n"));
}
