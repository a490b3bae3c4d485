//! Unlock secrets from systemd credentials: `callvault-passphrase` and `callvault-keyfile`.

use std::fs;

use crate::harness::{PASSPHRASE, Volume, keytool};

/// A volume whose first slot is `--keyfile key` (and `--passphrase-file
/// pass` too when `with_passphrase`), made with the cheapest KDF.
fn keyfile_volume(with_passphrase: bool) -> (Volume, std::path::PathBuf) {
    let vol = Volume::with_operator("ops", PASSPHRASE);
    let key = vol.dir.path().join("usb.key");
    fs::write(&key, b"the keyfile on the operator's USB stick").unwrap();
    let other = vol.dir.path().join("vol2");
    let mut args = vec!["init", other.to_str().unwrap(), "--label", "ops", "--keyfile", key.to_str().unwrap()];
    if with_passphrase {
        args.extend(["--passphrase-file", vol.pass.to_str().unwrap()]);
    }
    args.extend(["--kdf-memory", "1", "--kdf-time", "0"]);
    let out = keytool(&args);
    assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
    fs::remove_dir_all(&vol.path).unwrap();
    fs::rename(&other, &vol.path).unwrap();
    (vol, key)
}

fn creds_dir(vol: &Volume, files: &[(&str, &[u8])]) -> std::path::PathBuf {
    let dir = vol.dir.path().join("credentials");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).unwrap();
    for (name, bytes) in files {
        fs::write(dir.join(name), bytes).unwrap();
    }
    dir
}

#[test]
fn the_passphrase_credential_unlocks_without_options() {
    let vol = Volume::with_operator("ops", PASSPHRASE);
    let dir = creds_dir(&vol, &[("callvault-passphrase", format!("{PASSPHRASE}\n").as_bytes())]);
    let m = vol.mount_as_env(&[], &[("CREDENTIALS_DIRECTORY", dir.to_str().unwrap())]).expect("mounted");
    fs::write(m.p("call.wav"), b"unlocked from a credential").unwrap();
    assert!(m.unmount().success());
    // A wrong credential is a wrong passphrase, recorded.
    let dir = creds_dir(&vol, &[("callvault-passphrase", b"not the passphrase at all 9")]);
    let (code, err) = vol.mount_as_env(&[], &[("CREDENTIALS_DIRECTORY", dir.to_str().unwrap())]).err().unwrap();
    assert_eq!(code, Some(10), "{err}");
    assert!(vol.records(&["--event", "unlock_failed"]).len() == 1);
}

#[test]
fn the_keyfile_credential_works_like_the_passphrase_one() {
    let (vol, key) = keyfile_volume(false);
    let bytes = fs::read(&key).unwrap();
    let dir = creds_dir(&vol, &[("callvault-keyfile", &bytes)]);
    let env = [("CREDENTIALS_DIRECTORY", dir.to_str().unwrap())];
    let m = vol.mount_as_env(&[], &env).expect("keyfile credential mounts");
    assert!(m.unmount().success());
    let unlock = vol.records(&["--event", "unlock"]);
    assert_eq!(unlock.last().unwrap()["detail"]["label"], "ops");
    // One byte changed: refused.
    let mut changed = bytes.clone();
    changed[0] ^= 1;
    let dir = creds_dir(&vol, &[("callvault-keyfile", &changed)]);
    let (code, err) = vol.mount_as_env(&[], &[("CREDENTIALS_DIRECTORY", dir.to_str().unwrap())]).err().unwrap();
    assert_eq!(code, Some(10), "{err}");
    // Options given take precedence over credentials.
    let m =
        vol.mount_as_env(&["--keyfile", key.to_str().unwrap()], &[("CREDENTIALS_DIRECTORY", dir.to_str().unwrap())]);
    assert!(m.expect("--keyfile wins over the credential").unmount().success());
}

#[test]
fn both_credentials_open_a_passphrase_and_keyfile_slot_and_one_alone_does_not() {
    let (vol, key) = keyfile_volume(true);
    let bytes = fs::read(&key).unwrap();
    let pass = format!("{PASSPHRASE}\n");
    let dir = creds_dir(&vol, &[("callvault-keyfile", &bytes), ("callvault-passphrase", pass.as_bytes())]);
    let m = vol.mount_as_env(&[], &[("CREDENTIALS_DIRECTORY", dir.to_str().unwrap())]).expect("both mount");
    assert!(m.unmount().success());
    for only in [("callvault-keyfile", &bytes[..]), ("callvault-passphrase", pass.as_bytes())] {
        let dir = creds_dir(&vol, &[only]);
        let (code, err) = vol.mount_as_env(&[], &[("CREDENTIALS_DIRECTORY", dir.to_str().unwrap())]).err().unwrap();
        assert_eq!(code, Some(10), "{}: {err}", only.0);
    }
}
