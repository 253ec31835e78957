//! One connection's state and the commands about the connection itself: authentication,
//! protocol version, name, and what clients probe when they connect (`HELLO`, `COMMAND`,
//! `INFO`, `CONFIG GET`). Data commands go on to [`crate::exec::Store`].

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kvdb_core::auth::{Need, Role};

use crate::command::{self, Arg, Client, Command, Introspect};
use crate::error::CommandError;
use crate::info;
use crate::reply::{Protocol, Reply};
use crate::server::Shared;

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
            Err(e) => return e.into(),
        };
        match self.role {
            None if !spec.is_no_auth() => return CommandError::NoAuth.into(),
            Some(role) if spec.is_write() && !role.grants(Need::Write) => {
                return CommandError::NoPermission(spec.name.to_owned()).into();
            }
            _ => {}
        }
        let command = match command::parse(argv) {
            Ok(command) => command,
            Err(e) => return e.into(),
        };
        match self.connection(command) {
            Ok(reply) => reply,
            Err(data) => match self.shared.store.run(data).await {
                Some(reply) => reply,
                None => unreachable!("every command is a connection or a data command"),
            },
        }
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
            Command::ConfigGet(patterns) => info::config_get(&patterns),
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
