//! One connection's state and the commands about the connection itself: authentication,
//! protocol version, name, and what clients probe when they connect (`HELLO`, `COMMAND`,
//! `INFO`, `CONFIG GET`). Data commands go on to [`crate::exec::Store`].

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kvdb_core::auth::{Need, Role};

use kvdb_core::proto::v1 as pb;

use kvdb_core::slot::{common_slot, slot};

use crate::cluster;
use crate::command::{self, Arg, Client, Cluster, Command, Introspect};
use crate::error::{CommandError, kv_error_reply};
use crate::exec::Queued;
use crate::info;
use crate::plan;
use crate::reply::{Protocol, Reply};
use crate::server::Shared;
use crate::table::Spec;

/// A connection's state.
pub struct Session {
    shared: Arc<Shared>,
    /// `CLIENT ID`: unique in the server's lifetime.
    pub id: u64,
    /// The protocol replies are encoded in.
    pub protocol: Protocol,
    /// `CLIENT SETNAME`'s name; empty for none.
    name: String,
    /// The role of the token given to `AUTH`; `None` before one is, on a server with tokens.
    role: Option<Role>,
    /// Set by `QUIT`: answer, then close.
    pub quit: bool,
    /// Between `MULTI` and `EXEC`: the commands queued.
    multi: Option<Multi>,
    /// `WATCH`ed keys and the versions they had then.
    watched: Vec<pb::TxnGuard>,
    /// `READONLY`: in cluster mode, a replica answers reads of its shards.
    replica_reads: bool,
}

/// A transaction being queued.
#[derive(Default)]
struct Multi {
    queued: Vec<Queued>,
    /// A command was refused when queued: `EXEC` discards the transaction.
    dirty: bool,
}

impl Session {
    /// A new connection's state; authenticated already on a server without tokens.
    pub fn new(shared: Arc<Shared>, id: u64) -> Session {
        let role = shared.options.tokens.is_empty().then_some(Role::Admin);
        Session {
            shared,
            id,
            protocol: Protocol::Resp2,
            name: String::new(),
            role,
            quit: false,
            multi: None,
            watched: Vec::new(),
            replica_reads: false,
        }
    }

    /// Whether commands other than `AUTH`, `HELLO` and `QUIT` may run.
    pub fn is_authenticated(&self) -> bool {
        self.role.is_some()
    }

    /// Answers one request.
    pub async fn handle(&mut self, argv: Vec<Arg>) -> Reply {
        // As in Redis: an unknown command or a wrong argument count is reported even before
        // authentication; anything else needs it.
        let spec = match command::lookup(&argv) {
            Ok(spec) => spec,
            Err(e) => return self.refuse(e),
        };
        match self.role {
            None if !spec.is_no_auth() => return self.refuse(CommandError::NoAuth),
            Some(role) if spec.is_write() && !role.grants(Need::Write) => {
                return self.refuse(CommandError::NoPermission(spec.name.to_owned()));
            }
            _ => {}
        }
        if let Some(refused) = self.redirect(spec, &argv) {
            return self.refuse_reply(refused);
        }
        let command = match command::parse(argv) {
            Ok(command) => command,
            Err(e) => return self.refuse(e),
        };
        match self.transaction(command).await {
            Ok(reply) => reply,
            Err(command) if self.multi.is_some() => self.queue(command),
            Err(command) => match self.connection(command) {
                Ok(reply) => reply,
                Err(data) => match self.shared.store.run(data).await {
                    Some(reply) => reply,
                    None => unreachable!("every command is a connection or a data command"),
                },
            },
        }
    }

    /// A refusal; inside `MULTI` it also dooms the transaction, as in Redis.
    fn refuse(&mut self, e: CommandError) -> Reply {
        self.refuse_reply(e.into())
    }

    fn refuse_reply(&mut self, reply: Reply) -> Reply {
        if let Some(multi) = &mut self.multi {
            multi.dirty = true;
        }
        reply
    }

    /// In cluster mode, the error that sends a command elsewhere: `MOVED` when another node
    /// leads its keys' slot, `CROSSSLOT` when its keys are in several slots.
    fn redirect(&self, spec: &Spec, argv: &[Arg]) -> Option<Reply> {
        let me = self.shared.options.cluster_node?;
        let mut keys = spec.keys(argv).peekable();
        keys.peek()?;
        let slot = match common_slot(keys) {
            Ok(slot) => slot,
            Err(e) => return Some(kv_error_reply(&e)),
        };
        let router = self.shared.store.router();
        let replica_reads = self.replica_reads && !spec.is_write();
        match cluster::route(&router, me, slot, replica_reads) {
            cluster::Route::Here => None,
            cluster::Route::Moved(address) => Some(cluster::moved(slot, &address)),
        }
    }

    /// `CLUSTER`, `READONLY`, `READWRITE` and `ASKING`; refused in standalone mode.
    fn cluster(&mut self, command: Command) -> Reply {
        let Some(me) = self.shared.options.cluster_node else {
            return CommandError::ClusterDisabled.into();
        };
        let router = self.shared.store.router();
        let map = router.map();
        match command {
            Command::ReadOnly(on) => {
                self.replica_reads = on;
                Reply::ok()
            }
            Command::Cluster(Cluster::Info) => Reply::Verbatim(cluster::info(map)),
            Command::Cluster(Cluster::Slots) => cluster::slots(map),
            Command::Cluster(Cluster::Shards) => cluster::shards(map),
            Command::Cluster(Cluster::Nodes) => Reply::Verbatim(cluster::nodes(map, me)),
            Command::Cluster(Cluster::MyId) => Reply::text(cluster::node_id(me)),
            Command::Cluster(Cluster::KeySlot(key)) => Reply::Integer(i64::from(slot(&key).0)),
            // `ASKING` precedes a command sent after an `ASK` redirection, which KvDB never
            // gives (a slot moves with its whole shard): nothing to remember.
            _ => Reply::ok(),
        }
    }

    /// Answers `MULTI`, `EXEC`, `DISCARD`, `WATCH` and `UNWATCH` (outside `MULTI`); hands
    /// back any other command.
    async fn transaction(&mut self, command: Command) -> Result<Reply, Command> {
        Ok(match (command, self.multi.is_some()) {
            (Command::Multi, true) => CommandError::NestedMulti.into(),
            (Command::Multi, false) => {
                self.multi = Some(Multi::default());
                Reply::ok()
            }
            (Command::Exec, false) => CommandError::ExecWithoutMulti.into(),
            (Command::Exec, true) => {
                let multi = self.multi.take().unwrap_or_default();
                let watched = std::mem::take(&mut self.watched);
                if multi.dirty {
                    return Ok(CommandError::ExecAbort.into());
                }
                self.shared.store.exec(watched, multi.queued).await
            }
            (Command::Discard, false) => CommandError::DiscardWithoutMulti.into(),
            (Command::Discard, true) => {
                self.multi = None;
                self.watched.clear();
                Reply::ok()
            }
            (Command::Watch(_), true) => CommandError::WatchInsideMulti.into(),
            (Command::Watch(keys), false) => match self.shared.store.versions(keys).await {
                Ok(guards) => {
                    self.watched.extend(guards);
                    Reply::ok()
                }
                Err(reply) => reply,
            },
            (Command::Unwatch, false) => {
                self.watched.clear();
                Reply::ok()
            }
            (command, _) => return Err(command),
        })
    }

    /// Queues a command of a transaction: a data command as its planned operations, run by
    /// `EXEC`; a command about the connection answered now, its reply kept for `EXEC`'s.
    fn queue(&mut self, command: Command) -> Reply {
        let unsupported = match command {
            Command::MSetNx(_) => Some("msetnx"),
            Command::Scan(_) => Some("scan"),
            Command::Keys(_) => Some("keys"),
            Command::DbSize => Some("dbsize"),
            Command::RandomKey => Some("randomkey"),
            Command::Flush(name) => Some(name),
            _ => None,
        };
        if let Some(name) = unsupported {
            return self.refuse(CommandError::NotInMulti(name));
        }
        if matches!(command, Command::Quit) {
            self.quit = true;
            return Reply::ok();
        }
        let queued = match plan::plan(&command, plan_now()) {
            Some(Ok(plan)) => Queued::Data(command, plan),
            Some(Err(refused)) => Queued::Known(refused),
            None => match self.connection(command) {
                Ok(reply) => Queued::Known(reply),
                Err(_) => Queued::Known(Reply::ok()),
            },
        };
        if let Some(multi) = &mut self.multi {
            multi.queued.push(queued);
        }
        Reply::Simple("QUEUED".into())
    }

    /// Answers a command about the connection or the server; hands back a data command.
    fn connection(&mut self, command: Command) -> Result<Reply, Command> {
        Ok(match command {
            Command::Ping(None) => Reply::Simple("PONG".into()),
            Command::Ping(Some(message)) | Command::Echo(message) => Reply::Bulk(message),
            Command::Hello {
                protocol,
                auth,
                name,
            } => self.hello(protocol, auth, name),
            Command::Auth { user, password } => {
                match self.authenticate(user.is_some(), &password) {
                    Ok(()) => Reply::ok(),
                    Err(e) => e.into(),
                }
            }
            Command::Select => Reply::ok(),
            command @ (Command::Cluster(_) | Command::ReadOnly(_) | Command::Asking) => {
                self.cluster(command)
            }
            Command::Quit => {
                self.quit = true;
                Reply::ok()
            }
            Command::Client(Client::Id) => Reply::Integer(self.id as i64),
            Command::Client(Client::GetName) if self.name.is_empty() => Reply::Null,
            Command::Client(Client::GetName) => Reply::text(self.name.clone()),
            Command::Client(Client::SetName(name)) => {
                self.name = name;
                Reply::ok()
            }
            Command::Command(Introspect::All) => info::command_table(None),
            Command::Command(Introspect::Count) => Reply::Integer(info::command_count()),
            Command::Command(Introspect::Docs) => Reply::Map(Vec::new()),
            Command::Command(Introspect::Info(names)) => info::command_table(Some(&names)),
            Command::Info(sections) => Reply::Verbatim(info::info_text(&self.shared, &sections)),
            Command::ConfigGet(patterns) => info::config_get(&self.shared, &patterns),
            Command::Time => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                Reply::Array(vec![
                    Reply::text(now.as_secs().to_string()),
                    Reply::text(now.subsec_micros().to_string()),
                ])
            }
            data => return Err(data),
        })
    }

    /// `HELLO`: authenticates and names first, switches the protocol, then describes the
    /// server in the (new) protocol.
    fn hello(
        &mut self,
        protocol: Option<Protocol>,
        auth: Option<(Arg, Arg)>,
        name: Option<String>,
    ) -> Reply {
        if let Some((_user, password)) = auth
            && let Err(e) = self.authenticate(true, &password)
        {
            return e.into();
        }
        if !self.is_authenticated() {
            return CommandError::HelloNoAuth.into();
        }
        if let Some(name) = name {
            self.name = name;
        }
        if let Some(protocol) = protocol {
            self.protocol = protocol;
        }
        info::hello(self.id, self.protocol)
    }

    /// Checks `password` against the cluster's client tokens. Without tokens, as Redis without
    /// a password: `AUTH user pass` passes, `AUTH pass` is a configuration mistake.
    fn authenticate(&mut self, with_user: bool, password: &[u8]) -> Result<(), CommandError> {
        let tokens = &self.shared.options.tokens;
        if tokens.is_empty() {
            return if with_user {
                Ok(())
            } else {
                Err(CommandError::AuthNotConfigured)
            };
        }
        let mut bearer = b"Bearer ".to_vec();
        bearer.extend_from_slice(password);
        match tokens.role(&bearer) {
            Some(role) => {
                self.role = Some(role);
                Ok(())
            }
            None => Err(CommandError::WrongPass),
        }
    }
}

/// The wall clock in Unix milliseconds, which a queued command's expiries are fixed against.
fn plan_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
