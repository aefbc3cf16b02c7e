//! PostgreSQL connection strings as `store: {postgres: …}` names them: checked for their form
//! (a `postgres://` URL or `key=value` pairs, with the options the driver knows), and described
//! without their credentials. The store's driver parses them again when it connects; what it
//! refuses there is said the same way.

/// The options a connection string may set: the driver's, and `sslrootcert`, which the store
/// reads itself (its certificates verify the server).
const OPTIONS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslmode",
    "sslnegotiation",
    "sslrootcert",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// What a connection string names, without its password.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    pub hosts: Vec<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
    pub user: Option<String>,
}

/// Reads a connection string: a `postgres://` (or `postgresql://`) URL, or `key=value` pairs
/// separated by spaces.
pub fn parse(text: &str) -> Result<Target, String> {
    let mut target = Target::default();
    let rest = text
        .strip_prefix("postgres://")
        .or_else(|| text.strip_prefix("postgresql://"));
    if let Some(rest) = rest {
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, dbname) = rest.split_once('/').unwrap_or((rest, ""));
        let hosts = match authority.rsplit_once('@') {
            Some((credentials, hosts)) => {
                let user = credentials.split_once(':').map_or(credentials, |(u, _)| u);
                if !user.is_empty() {
                    target.user = Some(decode(user)?);
                }
                hosts
            }
            None => authority,
        };
        for host in hosts.split(',').filter(|h| !h.is_empty()) {
            let (host, port) = split_port(host)?;
            target.hosts.push(decode(host)?);
            if port.is_some() {
                target.port = port;
            }
        }
        if !dbname.is_empty() {
            target.dbname = Some(decode(dbname)?);
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            option(&mut target, key, &decode(value)?)?;
        }
    } else if text.contains('=') {
        for pair in text.split_whitespace() {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            option(&mut target, key, value.trim_matches('\''))?;
        }
    } else {
        return Err("expected postgres://USER@HOST:PORT/DATABASE".into());
    }
    if target.hosts.is_empty() {
        return Err("the URL names no host".into());
    }
    Ok(target)
}

/// The database a connection string names, without user or password:
/// `postgres://host:port/database`.
pub fn describe(text: &str) -> String {
    match parse(text) {
        Ok(t) => format!(
            "postgres://{}:{}/{}",
            t.hosts.first().map_or("?", String::as_str),
            t.port.unwrap_or(5432),
            t.dbname.or(t.user).as_deref().unwrap_or("postgres")
        ),
        Err(_) => "postgres (an unreadable URL)".into(),
    }
}

/// The message for a string the driver would refuse. It never quotes the string: it may hold a
/// password.
const UNREADABLE: &str = "the URL cannot be parsed (check its form and options)";

fn option(target: &mut Target, key: &str, value: &str) -> Result<(), String> {
    if !OPTIONS.contains(&key) {
        return Err(UNREADABLE.into());
    }
    let valid = match key {
        "host" => {
            target.hosts.extend(
                value
                    .split(',')
                    .filter(|h| !h.is_empty())
                    .map(str::to_owned),
            );
            true
        }
        "port" => match value.parse() {
            Ok(port) => {
                target.port = Some(port);
                true
            }
            Err(_) => false,
        },
        "dbname" => {
            target.dbname = Some(value.to_owned());
            true
        }
        "user" => {
            target.user = Some(value.to_owned());
            true
        }
        "sslmode" => matches!(
            value,
            "disable" | "prefer" | "require" | "verify-ca" | "verify-full"
        ),
        "sslnegotiation" => matches!(value, "postgres" | "direct"),
        "target_session_attrs" => matches!(value, "any" | "read-write" | "read-only"),
        "channel_binding" => matches!(value, "disable" | "prefer" | "require"),
        "load_balance_hosts" => matches!(value, "disable" | "random"),
        "keepalives" => matches!(value, "0" | "1"),
        "connect_timeout"
        | "tcp_user_timeout"
        | "keepalives_idle"
        | "keepalives_interval"
        | "keepalives_retries" => value.parse::<i64>().is_ok(),
        _ => true,
    };
    if valid {
        Ok(())
    } else {
        Err(UNREADABLE.into())
    }
}

/// `host:port`, `[v6]:port` or a host alone.
fn split_port(host: &str) -> Result<(&str, Option<u16>), String> {
    let (name, port) = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((name, rest)) => (name, rest.strip_prefix(':')),
            None => return Err(UNREADABLE.into()),
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    match port {
        Some(p) => p
            .parse()
            .map(|p| (name, Some(p)))
            .map_err(|_| UNREADABLE.into()),
        None => Ok((name, None)),
    }
}

/// Percent-decoding of one part of a URL.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or(UNREADABLE)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UNREADABLE)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UNREADABLE.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_described_without_credentials() {
        assert!(parse("postgres://u:secret@db.example:6543/yard").is_ok());
        assert!(parse("host=db user=u dbname=yard").is_ok());
        assert!(parse("postgresql://u@[::1]:5433/yard?sslmode=verify-full").is_ok());
        assert!(parse("postgres://%2Frun%2Fpostgresql/yard").is_ok());
        assert!(parse("mysql://db/yard").is_err());
        assert!(parse("postgres://db/yard?sslmode=bogus").is_err());
        assert!(parse("postgres://db/yard?colour=blue").is_err());
        assert!(parse("postgres://db:port/yard").is_err());
        assert_eq!(
            parse("postgres:///yard").map(|_| ()),
            Err("the URL names no host".into())
        );
        let described = describe("postgres://u:secret@db.example:6543/yard?sslmode=require");
        assert_eq!(described, "postgres://db.example:6543/yard");
        assert!(!described.contains("secret"));
        assert_eq!(
            describe("host=db user=alice password=secret"),
            "postgres://db:5432/alice"
        );
        assert_eq!(describe("nonsense"), "postgres (an unreadable URL)");
    }
}
