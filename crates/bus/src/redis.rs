//! The bus's Redis connection: the stream commands it sends, with errors as text.
//! Everything the bus says to Redis goes through here; the replies are read by `reply`.

use anyhow::{Result, anyhow};
use spin_sdk::redis::{Connection, RedisParameter, RedisResult};

pub struct Redis {
    connection: Connection,
}

impl Redis {
    pub fn open(address: &str) -> Result<Redis> {
        let connection =
            Connection::open(address).map_err(|err| anyhow!("cannot connect to Redis: {err:?}"))?;
        Ok(Redis { connection })
    }

    /// Runs `command` with `args` (all sent as strings, as `redis-cli` does).
    pub fn run(&self, command: &str, args: &[&str]) -> Result<Vec<RedisResult>> {
        let args: Vec<RedisParameter> = args
            .iter()
            .map(|arg| RedisParameter::Binary(arg.as_bytes().to_vec()))
            .collect();
        self.connection
            .execute(command, &args)
            .map_err(|err| anyhow!("{command}: {}", describe(&err)))
    }
}

/// Redis answered that the consumer group (or its stream) does not exist yet.
pub fn is_no_group(err: &anyhow::Error) -> bool {
    format!("{err:#}").contains("NOGROUP")
}

/// The group exists already (a concurrent first drain created it).
pub fn is_busy_group(err: &anyhow::Error) -> bool {
    format!("{err:#}").contains("BUSYGROUP")
}

fn describe(err: &spin_sdk::redis::Error) -> String {
    match err {
        spin_sdk::redis::Error::Other(message) => message.clone(),
        other => format!("{other:?}"),
    }
}
