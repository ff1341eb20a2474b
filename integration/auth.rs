//! Logins as podman, skopeo and docker keep them (issue 21, part 3), against Debian's
//! docker-registry with htpasswd and with token authentication (integration/tokenserver.py, a
//! token server this test starts): each auth file location, key precedence, an `identitytoken`
//! exchanged at the token server, credential helpers that work, fail or are missing, and
//! `--creds`/`--src-creds`/`--dest-creds`. Where skopeo reads the same files (containers/image:
//! it has no `credsStore`), harden must reach the same verdict it does.

use crate::common::*;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A home of its own for each case: no login of the host's reaches harden or skopeo.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let h = Home { dir: tempdir("auth-home") };
        std::fs::create_dir_all(h.run()).unwrap();
        h
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    /// `$XDG_RUNTIME_DIR` (it must exist to be read).
    fn run(&self) -> PathBuf {
        self.path().join("run")
    }
    /// The environment: HOME and XDG_RUNTIME_DIR here, nothing else set, plus `extra`.
    fn env(&self, extra: &[(&str, &Path)]) -> Vec<(String, OsString)> {
        let mut v = vec![
            ("HOME".to_string(), self.path().as_os_str().to_owned()),
            ("XDG_RUNTIME_DIR".to_string(), self.run().into_os_string()),
            ("XDG_CACHE_HOME".to_string(), self.path().join("cache").into_os_string()),
        ];
        v.extend(extra.iter().map(|(k, p)| (k.to_string(), p.as_os_str().to_owned())));
        v
    }
}

/// `cmd` with every login-related variable cleared, then `env` set.
fn hermetic(cmd: &mut Command, env: &[(String, OsString)]) {
    for k in [
        "REGISTRY_AUTH_FILE",
        "DOCKER_CONFIG",
        "XDG_CONFIG_HOME",
        "XDG_RUNTIME_DIR",
        "HARDEN_CREDS",
        "HARDEN_SRC_CREDS",
        "HARDEN_DEST_CREDS",
        "HARDEN_REGISTRY_PASSWORD",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
}

fn harden_with(args: &[&str], env: &[(String, OsString)]) -> Output {
    let mut cmd = Command::new(harden_bin());
    cmd.args(args).current_dir(repo_root());
    hermetic(&mut cmd, env);
    run_with_timeout(&mut cmd)
}

/// `skopeo inspect --raw` of `image` with the same environment: whether skopeo got in.
fn skopeo_gets_in(image: &str, extra: &[&str], env: &[(String, OsString)]) -> bool {
    let mut cmd = Command::new(require_tool("skopeo"));
    cmd.args(["inspect", "--raw", "--tls-verify=false"]).args(extra).arg(format!("docker://{image}"));
    hermetic(&mut cmd, env);
    run_with_timeout(&mut cmd).status.success()
}

/// `harden files IMAGE`: reads the manifest, config and layer, so it needs a working login.
fn files(image: &str, extra: &[&str], env: &[(String, OsString)]) -> Output {
    let mut args = vec!["files", image, "-q"];
    args.extend_from_slice(extra);
    harden_with(&args, env)
}

/// Pushes a one-file image (`/hello`, executable) to `host/repo_tag` with skopeo, logged in
/// with the test password; returns `host/repo_tag`.
fn push_tiny(host: &str, repo_tag: &str) -> String {
    let dir = tempdir("auth-tiny");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, "hello", &b"hello\n"[..]).unwrap();
    let layer = b.into_inner().unwrap();
    oci_layout_of_layers(dir.path(), &[&layer], serde_json::json!({"Cmd": ["/hello"]}));
    let creds = format!("{AUTH_USER}:{AUTH_PASS}");
    skopeo_copy_args(
        &format!("oci:{}:t", dir.path().display()),
        &format!("docker://{host}/{repo_tag}"),
        &["--dest-creds", &creds],
    );
    format!("{host}/{repo_tag}")
}

fn auths(entries: &[(&str, &str, &str)]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (key, user, pass) in entries {
        m.insert(key.to_string(), serde_json::json!({"auth": base64_encode(format!("{user}:{pass}").as_bytes())}));
    }
    serde_json::json!({ "auths": m })
}

fn write_json(path: &Path, doc: &serde_json::Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
}

/// Asserts `out` failed with `code` and said nothing of the password.
fn expect_refused(out: &Output, code: i32, says: &[&str]) {
    expect_exit(out, code);
    let err = stderr_str(out);
    for s in says {
        assert!(err.contains(s), "stderr should name {s:?}:\n{}", dump(out));
    }
    assert!(!dump(out).contains(AUTH_PASS), "the password must never be printed:\n{}", dump(out));
}

/// Where a login file can be, and what points harden and skopeo at it.
enum Place {
    AuthfileFlag,
    RegistryAuthFile,
    XdgRuntimeDir,
    XdgConfigHome,
    HomeConfig,
    DockerConfig,
    HomeDocker,
}

/// The registry refuses the image without a login; with the login at `place`, harden and
/// skopeo both get in.
fn login_at(place: Place) {
    let reg = Registry::start(true);
    let image = push_tiny(&reg.host, "team/app:1");
    let home = Home::new();
    let doc = auths(&[(&reg.host, AUTH_USER, AUTH_PASS)]);
    let out = files(&image, &[], &home.env(&[]));
    expect_refused(&out, 1, &[&reg.host]);
    assert!(!skopeo_gets_in(&image, &[], &home.env(&[])));

    let file = home.path().join("elsewhere/auth.json");
    let (env, flag): (Vec<(String, OsString)>, Vec<String>) = match place {
        Place::AuthfileFlag => (home.env(&[]), vec!["--authfile".into(), file.display().to_string()]),
        Place::RegistryAuthFile => (home.env(&[("REGISTRY_AUTH_FILE", &file)]), vec![]),
        Place::XdgRuntimeDir => (home.env(&[]), vec![]),
        Place::XdgConfigHome => (home.env(&[("XDG_CONFIG_HOME", &home.path().join("cfg"))]), vec![]),
        Place::HomeConfig | Place::HomeDocker => (home.env(&[]), vec![]),
        Place::DockerConfig => (home.env(&[("DOCKER_CONFIG", &home.path().join("dc"))]), vec![]),
    };
    let path = match place {
        Place::AuthfileFlag | Place::RegistryAuthFile => file,
        Place::XdgRuntimeDir => home.run().join("containers/auth.json"),
        Place::XdgConfigHome => home.path().join("cfg/containers/auth.json"),
        Place::HomeConfig => home.path().join(".config/containers/auth.json"),
        Place::DockerConfig => home.path().join("dc/config.json"),
        Place::HomeDocker => home.path().join(".docker/config.json"),
    };
    write_json(&path, &doc);
    let flag: Vec<&str> = flag.iter().map(String::as_str).collect();
    let out = files(&image, &flag, &env);
    assert!(out.status.success(), "harden with the login in {}:\n{}", path.display(), dump(&out));
    assert!(stdout_str(&out).contains("/hello"), "{}", dump(&out));
    assert!(skopeo_gets_in(&image, &flag, &env), "skopeo should get in with {}", path.display());
}

#[test]
fn login_from_authfile_flag() {
    login_at(Place::AuthfileFlag);
}

#[test]
fn login_from_registry_auth_file() {
    login_at(Place::RegistryAuthFile);
}

#[test]
fn login_from_xdg_runtime_dir() {
    login_at(Place::XdgRuntimeDir);
}

#[test]
fn login_from_xdg_config_home() {
    login_at(Place::XdgConfigHome);
}

#[test]
fn login_from_home_config_containers() {
    login_at(Place::HomeConfig);
}

#[test]
fn login_from_docker_config() {
    login_at(Place::DockerConfig);
}

#[test]
fn login_from_home_docker_config() {
    login_at(Place::HomeDocker);
}

/// Keys most specific first within a file; the first file with a matching key wins (even a
/// less specific one); an explicit auth file is the only one read; docker's URL keys match.
/// skopeo agrees on every case.
#[test]
fn login_key_and_file_precedence() {
    let reg = Registry::start(true);
    let h = reg.host.clone();
    let team = push_tiny(&h, "team/app:1");
    let other = push_tiny(&h, "other/app:1");
    let home = Home::new();
    let harden_says = |image: &str, extra: &[&str], env: &[(String, OsString)], ok: bool, case: &str| {
        let out = files(image, extra, env);
        assert_eq!(out.status.success(), ok, "{case}: harden on {image}:\n{}", dump(&out));
        if !ok {
            expect_refused(&out, 1, &[&h]);
        }
    };
    let agree = |image: &str, extra: &[&str], env: &[(String, OsString)], ok: bool, case: &str| {
        harden_says(image, extra, env, ok, case);
        assert_eq!(skopeo_gets_in(image, extra, env), ok, "{case}: skopeo on {image}");
    };
    // One file: host/team beats host.
    let runtime = home.run().join("containers/auth.json");
    write_json(&runtime, &auths(&[(&h, AUTH_USER, "wrong"), (&format!("{h}/team"), AUTH_USER, AUTH_PASS)]));
    agree(&team, &[], &home.env(&[]), true, "namespace key");
    agree(&other, &[], &home.env(&[]), false, "host key");
    // The runtime file's host key beats the config file's repository key: files come first.
    let config = home.path().join(".config/containers/auth.json");
    write_json(&config, &auths(&[(&format!("{h}/other/app"), AUTH_USER, AUTH_PASS)]));
    agree(&other, &[], &home.env(&[]), false, "first file with a match");
    // Without a match in the runtime file, the config file's repository key is used.
    write_json(&runtime, &auths(&[(&format!("{h}/team"), AUTH_USER, AUTH_PASS)]));
    agree(&other, &[], &home.env(&[]), true, "second file");
    // An auth file given is the only one read, as containers/image reads it since v5.24
    // (skopeo 1.11). Debian's skopeo 1.9 (containers/image 5.23) still read the defaults after
    // it, so skopeo is not asked here.
    let alone = home.path().join("alone.json");
    write_json(&alone, &auths(&[("unrelated.example", AUTH_USER, AUTH_PASS)]));
    harden_says(&other, &["--authfile", alone.to_str().unwrap()], &home.env(&[]), false, "--authfile alone");
    // docker's old URL form of a key.
    write_json(&alone, &auths(&[(&format!("https://{h}/v1/"), AUTH_USER, AUTH_PASS)]));
    agree(&other, &["--authfile", alone.to_str().unwrap()], &home.env(&[]), true, "https://host/v1/ key");
}

/// An `identitytoken` is exchanged at the token server with a refresh_token grant, for pull
/// and for push; a wrong one is refused naming the token server. skopeo gets in with the
/// same file.
#[test]
fn login_identity_token_against_token_auth() {
    let (_server, reg, tdir) = token_registry("refresh-4711");
    let image = push_tiny(&reg.host, "team/app:1");
    let log = tdir.path().join("token.log");
    let _ = std::fs::remove_file(&log);

    let home = Home::new();
    let authfile = home.path().join("auth.json");
    let entry = |token: &str| {
        serde_json::json!({"auths": {reg.host.clone(): {
            "auth": base64_encode(format!("{AUTH_USER}:").as_bytes()), "identitytoken": token}}})
    };
    write_json(&authfile, &entry("refresh-4711"));
    let flag = ["--authfile", authfile.to_str().unwrap()];
    let out = files(&image, &flag, &home.env(&[]));
    assert!(out.status.success(), "harden with an identity token:\n{}", dump(&out));
    assert!(!dump(&out).contains("refresh-4711"), "the token must never be printed:\n{}", dump(&out));
    let lines = std::fs::read_to_string(&log).unwrap();
    let grants: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ours = grants
        .iter()
        .find(|g| g["client_id"] == "harden")
        .unwrap_or_else(|| panic!("no grant from harden in the token server's log:\n{lines}"));
    assert_eq!(ours["method"], "POST", "{lines}");
    assert_eq!(ours["grant_type"], "refresh_token", "{lines}");
    assert_eq!(ours["service"], "harden-test", "{lines}");
    assert_eq!(ours["scopes"], serde_json::json!(["repository:team/app:pull"]), "{lines}");
    assert_eq!(ours["granted"], true, "{lines}");
    assert!(skopeo_gets_in(&image, &flag, &home.env(&[])), "skopeo with the same identity token");

    // Push: the rebuild's destination gets a pull,push token the same way.
    let dst = format!("{}/team/hard:1", reg.host);
    let mut args = vec!["rebuild", &image, &dst, "-q", "--no-cache"];
    args.extend_from_slice(&flag);
    let out = harden_with(&args, &home.env(&[]));
    let pinned = expect_pinned(&out);
    assert!(pinned.name.ends_with("/team/hard"), "{pinned:?}");
    let lines = std::fs::read_to_string(&log).unwrap();
    assert!(
        lines.contains(r#""grant_type": "refresh_token", "client_id": "harden", "service": "harden-test", "scopes": ["repository:team/hard:pull,push"], "granted": true"#),
        "no push-scoped refresh_token grant from harden:\n{lines}"
    );
    assert!(skopeo_gets_in(&dst, &flag, &home.env(&[])), "the pushed result is there");

    // A token the server does not know: refused, naming the token server.
    write_json(&authfile, &entry("stale"));
    let out = files(&image, &flag, &home.env(&[]));
    expect_refused(&out, 1, &["token server", "refused the identity token"]);
    assert!(!dump(&out).contains("stale"), "{}", dump(&out));
}

/// A token server (integration/tokenserver.py, knowing the refresh token `refresh`) and a
/// registry taking its tokens; the server lives as long as the first value.
fn token_registry(refresh: &str) -> (impl Drop, Registry, tempfile::TempDir) {
    let python = repo_root().join("target/it-venv/bin/python");
    assert!(python.exists(), "{} missing: run integration/setup.sh (cryptography)", python.display());
    let tdir = tempdir("tokenserver");
    let mut server = Command::new(&python)
        .arg(integration_dir().join("tokenserver.py"))
        .arg(tdir.path())
        .args(["--refresh-token", refresh, "--owner-pid", &std::process::id().to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start integration/tokenserver.py");
    let mut port = String::new();
    {
        use std::io::BufRead;
        std::io::BufReader::new(server.stdout.take().unwrap()).read_line(&mut port).unwrap();
    }
    let port = port.trim().to_string();
    assert!(port.parse::<u16>().is_ok(), "tokenserver.py printed {port:?}");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let reg = Registry::start_token(&format!("http://127.0.0.1:{port}/token"), &tdir.path().join("cert.pem"));
    (Kill(server), reg, tdir)
}

/// The requests the registry answered after its log had `from` lines: (method, path) each.
fn requests_after(reg: &Registry, from: usize) -> Vec<(String, String, String)> {
    let field = |l: &str, k: &str| {
        l.split(&format!(" {k}="))
            .nth(1)
            .map(|v| v.trim_start_matches('"').split(['"', ' ']).next().unwrap_or("").to_string())
    };
    reg.access_log()
        .lines()
        .skip(from)
        .filter(|l| l.contains("response completed"))
        .map(|l| {
            let f = |k| field(l, k).unwrap_or_default();
            (f("http.request.method"), f("http.request.uri"), f("http.response.status"))
        })
        .collect()
}

/// A re-mirror to another repository of a token-authenticated registry mounts every blob (one
/// token reads the repository holding them and writes the new one, as docker asks for it;
/// oci-client alone asks for one repository per token and distribution then answers a mount
/// with an upload), uploads none again and looks up nothing beside the source: about skopeo's
/// count of requests.
#[test]
fn login_token_auth_remirror_mounts_instead_of_uploading() {
    let (_server, reg, _tdir) = token_registry("unused");
    let image = push_tiny(&reg.host, "team/app:1");
    let home = Home::new();
    let authfile = home.path().join("auth.json");
    write_json(&authfile, &auths(&[(&reg.host, AUTH_USER, AUTH_PASS)]));
    let cache = tempdir("remirror-cache");
    let rebuild = |dst: &str| {
        let dst = format!("{}/{dst}", reg.host);
        let cache = cache.path().to_str().unwrap();
        let args = [
            "rebuild",
            &image,
            &dst,
            "-q",
            "-p",
            "strict",
            "--authfile",
            authfile.to_str().unwrap(),
            "--cache-dir",
            cache,
        ];
        expect_pinned(&harden_with(&args, &home.env(&[])))
    };
    let first = rebuild("mirror/a:1");
    let before = reg.access_log().lines().count();
    let again = rebuild("mirror/b:1");
    assert_eq!(first.digest, again.digest, "a re-mirror is the same image");
    let reqs = requests_after(&reg, before);
    let shown = reqs.iter().map(|(m, u, s)| format!("{m} {u} {s}")).collect::<Vec<_>>().join("\n");
    let uploads = reqs.iter().filter(|(m, u, _)| m == "PUT" && u.contains("/blobs/uploads/")).count();
    assert_eq!(uploads, 0, "blobs uploaded again instead of mounted:\n{shown}");
    let mounted = reqs.iter().filter(|(m, u, s)| m == "POST" && u.contains("mount=") && s == "201").count();
    assert!(mounted >= 2, "no cross-repository mount answered 201:\n{shown}");
    assert!(
        !reqs.iter().any(|(_, u, _)| u.contains(".sig") || u.contains(".att")),
        "signature look-ups on a reuse:\n{shown}"
    );
    assert!(reqs.len() <= 20, "{} requests for a re-mirror (skopeo makes about 13):\n{shown}", reqs.len());
}

/// A rewritten layer goes up while it is rewritten by harden's own upload — a POST, ONE chunked
/// PATCH, the PUT with the rewrite's digest — under each login a registry asks for: htpasswd
/// (Basic, sent as it is), token authentication (the push token oci-client got for the
/// repository, no token request more) and an identity token (its exchange). The push finds
/// each rewritten layer held: none falls back to the push's own upload. With token
/// authentication, the app image's cold `-p strict` rebuild into another repository of the same
/// registry makes no more requests than before the streamed upload (`integration/bench.sh
/// requests`: 22 to the registry, 3 to the token server). Every login gives the same digest.
#[test]
fn login_streamed_rewrite_upload_under_basic_bearer_and_identity_logins() {
    let fx = fixture("app");
    let (_server, tok, tdir) = token_registry("refresh-4711");
    let basic = Registry::start(true);
    let home = Home::new();
    let authfile = home.path().join("auth.json");
    write_json(&authfile, &auths(&[(&tok.host, AUTH_USER, AUTH_PASS), (&basic.host, AUTH_USER, AUTH_PASS)]));
    let identity = home.path().join("identity.json");
    let entry =
        serde_json::json!({"auth": base64_encode(format!("{AUTH_USER}:").as_bytes()), "identitytoken": "refresh-4711"});
    write_json(&identity, &serde_json::json!({"auths": {tok.host.clone(): entry}}));
    let tokens = || std::fs::read_to_string(tdir.path().join("token.log")).map(|l| l.lines().count()).unwrap_or(0);
    let (src_tok, src_basic) = (tok.push_fixture(&fx, "rq/src:1"), basic.push_fixture(&fx, "rq/src:1"));
    let mut digests = Vec::new();
    for (reg, src, login, dst) in [
        (&tok, &src_tok, &authfile, "rq/h1:1"),
        (&basic, &src_basic, &authfile, "rq/h1:1"),
        (&tok, &src_tok, &identity, "rq/id:1"),
    ] {
        let cache = tempdir("stream-login-cache");
        let (before, tokens_before) = (reg.access_log().lines().count(), tokens());
        let dst = reg.image(dst);
        let args = [
            "rebuild",
            src,
            &dst,
            "-p",
            "strict",
            "--base-name",
            "example.com/app:1",
            "--authfile",
            login.to_str().unwrap(),
            "--cache-dir",
            cache.path().to_str().unwrap(),
        ];
        let out = harden_with(&args, &home.env(&[]));
        let pinned = expect_pinned(&out);
        let err = stderr_str(&out);
        let case = format!("{dst} with {}", login.display());
        assert!(!err.contains("goes up with the push"), "{case}: the streamed upload gave up:\n{err}");
        // "rewrote layer 1/2 SOURCE → RESULT (…)": the results' short digests.
        let rewritten: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("rewrote layer "))
            .filter_map(|l| l.split(" → ").nth(1)?.split(' ').next())
            .collect();
        assert!(!rewritten.is_empty(), "{case}: nothing rewritten:\n{err}");
        for short in &rewritten {
            assert!(err.contains(&format!("blob {short} already present")), "{case}: {short} not held:\n{err}");
        }
        let reqs = requests_after(reg, before);
        let shown = reqs.iter().map(|(m, u, s)| format!("{m} {u} {s}")).collect::<Vec<_>>().join("\n");
        let patches = reqs.iter().filter(|(m, _, s)| m == "PATCH" && s == "202").count();
        assert_eq!(patches, rewritten.len(), "{case}: one PATCH per rewritten layer:\n{shown}");
        let committed = reqs.iter().filter(|(m, u, s)| m == "PUT" && u.contains("digest=") && s == "201").count();
        assert!(committed >= rewritten.len(), "{case}: the uploads were not committed:\n{shown}");
        if std::ptr::eq(reg, &tok) && login == &authfile {
            let asked = tokens() - tokens_before;
            assert!(reqs.len() <= 22, "{case}: {} requests (22 before the streamed upload):\n{shown}", reqs.len());
            assert!(asked <= 3, "{case}: {asked} token requests (3 before the streamed upload)");
        }
        digests.push(pinned.digest);
    }
    assert!(digests.iter().all(|d| d == &digests[0]), "every login gives the same digest: {digests:?}");
}

/// credHelpers and credsStore: a working helper logs in (skopeo agrees for credHelpers); a
/// failing or missing one is an error naming it, never anonymous access.
#[test]
fn login_credential_helpers() {
    let reg = Registry::start(true);
    let image = push_tiny(&reg.host, "team/app:1");
    let home = Home::new();
    let bin = home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = |name: &str, body: &str| {
        let p = bin.join(format!("docker-credential-{name}"));
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("broken", "cat >/dev/null; echo 'keychain is locked'; exit 1");
    script(
        "good",
        &format!(
            r#"[ "$1" = get ] || exit 1; server=$(cat); [ "$server" = "{}" ] || {{ echo "asked for $server"; exit 1; }}
printf '{{"ServerURL":"%s","Username":"{AUTH_USER}","Secret":"{AUTH_PASS}"}}' "$server""#,
            reg.host
        ),
    );
    script("empty", "cat >/dev/null; echo 'credentials not found in native keychain'; exit 1");
    let path = std::env::join_paths(
        std::iter::once(bin.clone()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let mut env = home.env(&[]);
    env.push(("PATH".into(), path));
    let authfile = home.path().join("config.json");
    let flag = ["--authfile", authfile.to_str().unwrap()];

    write_json(&authfile, &serde_json::json!({"credHelpers": {reg.host.clone(): "good"}}));
    let out = files(&image, &flag, &env);
    assert!(out.status.success(), "credHelpers good:\n{}", dump(&out));
    assert!(skopeo_gets_in(&image, &flag, &env), "skopeo with credHelpers good");

    write_json(&authfile, &serde_json::json!({"auths": {reg.host.clone(): {}}, "credsStore": "good"}));
    let out = files(&image, &flag, &env);
    assert!(out.status.success(), "credsStore good:\n{}", dump(&out));

    write_json(&authfile, &serde_json::json!({"credsStore": "broken"}));
    let out = files(&image, &flag, &env);
    expect_refused(&out, 1, &["docker-credential-broken", "keychain is locked", "credsStore"]);

    write_json(&authfile, &serde_json::json!({"credHelpers": {reg.host.clone(): "broken"}}));
    let out = files(&image, &flag, &env);
    expect_refused(&out, 1, &["docker-credential-broken", "credHelpers"]);
    assert!(!skopeo_gets_in(&image, &flag, &env), "skopeo fails on the broken helper too");

    write_json(&authfile, &serde_json::json!({"credHelpers": {reg.host.clone(): "absent"}}));
    let out = files(&image, &flag, &env);
    expect_refused(&out, 1, &["docker-credential-absent"]);

    // A helper that holds nothing for the registry is not an error: anonymous, and the
    // registry says no.
    write_json(&authfile, &serde_json::json!({"credsStore": "empty"}));
    let out = files(&image, &flag, &env);
    expect_exit(&out, 1);
    assert!(!stderr_str(&out).contains("docker-credential-empty"), "{}", dump(&out));
}

/// --creds beats every file; USER alone takes HARDEN_REGISTRY_PASSWORD, and with neither it nor
/// a terminal it is a usage error; HARDEN_CREDS is --creds. On rebuild --src-creds and
/// --dest-creds each reach their own side, before --creds.
#[test]
fn login_creds_flags() {
    let src_reg = Registry::start(true);
    let dst_reg = Registry::start(true);
    let image = push_tiny(&src_reg.host, "team/app:1");
    let home = Home::new();
    let wrong = home.path().join("wrong.json");
    write_json(&wrong, &auths(&[(&src_reg.host, AUTH_USER, "wrong"), (&dst_reg.host, AUTH_USER, "wrong")]));
    let right = home.path().join("right.json");
    write_json(&right, &auths(&[(&src_reg.host, AUTH_USER, AUTH_PASS), (&dst_reg.host, AUTH_USER, AUTH_PASS)]));
    let good = format!("{AUTH_USER}:{AUTH_PASS}");
    let bad = format!("{AUTH_USER}:nope");
    let env = home.env(&[]);
    let w = wrong.to_str().unwrap();
    let r = right.to_str().unwrap();

    let out = files(&image, &["--authfile", w, "--creds", &good], &env);
    assert!(out.status.success(), "--creds over a wrong file:\n{}", dump(&out));
    let out = files(&image, &["--authfile", r, "--creds", &bad], &env);
    expect_refused(&out, 1, &[&src_reg.host]);

    let mut with_pw = env.clone();
    with_pw.push(("HARDEN_REGISTRY_PASSWORD".into(), AUTH_PASS.into()));
    let out = files(&image, &["--authfile", w, "--creds", AUTH_USER], &with_pw);
    assert!(out.status.success(), "--creds USER + HARDEN_REGISTRY_PASSWORD:\n{}", dump(&out));
    let out = files(&image, &["--creds", AUTH_USER], &env);
    expect_refused(&out, 2, &["--creds", "HARDEN_REGISTRY_PASSWORD"]);
    let mut creds_env = env.clone();
    creds_env.push(("HARDEN_CREDS".into(), good.clone().into()));
    let out = files(&image, &["--authfile", w], &creds_env);
    assert!(out.status.success(), "HARDEN_CREDS:\n{}", dump(&out));
    // The other common flags come from HARDEN_* too (clap's env): HARDEN_TIMEOUT is --timeout.
    let mut timeout_env = creds_env.clone();
    timeout_env.push(("HARDEN_TIMEOUT".into(), "0".into()));
    expect_refused(&files(&image, &[], &timeout_env), 2, &["--timeout"]);

    let dst = format!("{}/team/hard:1", dst_reg.host);
    let rebuild = |extra: &[&str]| {
        let mut args = vec!["rebuild", image.as_str(), dst.as_str(), "-q", "--no-cache", "--creds", bad.as_str()];
        args.extend_from_slice(extra);
        harden_with(&args, &env)
    };
    let out = rebuild(&["--src-creds", &good, "--dest-creds", &good]);
    expect_pinned(&out);
    assert!(!dump(&out).contains(AUTH_PASS), "{}", dump(&out));
    // Each side its own: a wrong destination login fails at the destination (before any work).
    let out = rebuild(&["--src-creds", &good]);
    expect_refused(&out, 1, &[&dst_reg.host, "login from --creds"]);
    let out = rebuild(&["--dest-creds", &good]);
    expect_refused(&out, 1, &[&src_reg.host]);
}
