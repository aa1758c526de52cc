//! One Spark Connect session: plans go out, Arrow batches and ML results come back.
//!
//! Built on `apache-spark-connect-core`'s gRPC client. Two things it does not do for us:
//! - a result stream that the server ends without `ResultComplete` (it cuts streams after
//!   `spark.connect.execute.reattachable.senderMaxStreamDuration`, 2 minutes by default, while a
//!   long fit keeps running) is resumed with `ReattachExecute`, here, instead of being taken as
//!   the end of the result;
//! - the session's temporary views, cached tables and cached models are released when the
//!   session ends.

use std::io::Cursor;
use std::time::Duration;

use arrow_array::RecordBatch;
use pb::execute_plan_response::ResponseType;
use spark_connect_core::{ChannelBuilder, SparkConnectClient, block_on};
use spark_connect_proto as pb;

use super::ClusterError;

/// Consecutive transport failures of one operation before the server counts as lost.
const MAX_RETRIES: usize = 3;

/// A session on a Spark Connect server.
pub(crate) struct Session {
    client: SparkConnectClient,
    address: String,
    /// Temporary views that were cached, uncached when the session ends.
    cached: Vec<String>,
    /// Server-side ML objects (fitted models), deleted when the session ends.
    objects: Vec<String>,
}

impl Session {
    /// Opens a new session on `remote` (`sc://HOST:PORT`) and checks that the server answers.
    /// Returns the session and the server's Spark version.
    pub(crate) fn connect(remote: &str) -> Result<(Self, String), ClusterError> {
        let unreachable = |message: String| ClusterError::Unreachable { address: remote.to_owned(), message };
        if !remote.starts_with("sc://") {
            return Err(unreachable("the address must look like sc://HOST:PORT".into()));
        }
        let builder = ChannelBuilder::parse(remote).map_err(|e| unreachable(e.message()))?;
        let client = block_on(SparkConnectClient::connect(&builder)).map_err(|e| unreachable(e.message()))?;
        let session = Self { client, address: remote.to_owned(), cached: Vec::new(), objects: Vec::new() };
        let version = session
            .collect(super::plan::sql("SELECT version()"), "asking for the Spark version")
            .map_err(|e| unreachable(e.to_string()))
            .and_then(|batches| {
                super::first_string(&batches).ok_or_else(|| unreachable("the server sent no version".into()))
            })?;
        Ok((session, version.split_whitespace().next().unwrap_or_default().to_owned()))
    }

    fn user_context(&self) -> Option<pb::UserContext> {
        Some(pb::UserContext { user_id: "trainbench".into(), user_name: "trainbench".into(), extensions: Vec::new() })
    }

    /// Runs `plan` to the end and returns every response. `step` says what was being done, for
    /// errors.
    fn execute(&self, plan: pb::Plan, step: &str) -> Result<Vec<pb::ExecutePlanResponse>, ClusterError> {
        let failed = |message: String| ClusterError::Spark { step: step.to_owned(), message };
        let operation_id = uuid::Uuid::new_v4().to_string();
        let request = pb::ExecutePlanRequest {
            session_id: self.client.session_id().to_owned(),
            user_context: self.user_context(),
            operation_id: Some(operation_id.clone()),
            plan: Some(plan),
            client_type: Some(client_type()),
            request_options: vec![pb::execute_plan_request::RequestOption {
                request_option: Some(pb::execute_plan_request::request_option::RequestOption::ReattachOptions(
                    pb::ReattachOptions { reattachable: true },
                )),
            }],
            ..Default::default()
        };
        block_on(async {
            let mut stream = self.client.execute_plan(request).await.map_err(|e| {
                let message = e.message();
                if is_transport_text(&message) {
                    failed(format!("lost the server at {}: {message}", self.address))
                } else {
                    failed(message)
                }
            })?;
            let mut responses = Vec::new();
            let mut last_response_id: Option<String> = None;
            let mut complete = false;
            let mut failures = 0;
            loop {
                let next = stream.message().await;
                let lost = match next {
                    Ok(Some(response)) => {
                        failures = 0;
                        last_response_id = Some(response.response_id.clone());
                        complete |= matches!(response.response_type, Some(ResponseType::ResultComplete(_)));
                        responses.push(response);
                        continue;
                    }
                    Ok(None) if complete => break,
                    // The server closed the stream while the operation runs on: reattach.
                    Ok(None) => None,
                    Err(status) if is_transport_failure(&status) => Some(status.message().to_owned()),
                    Err(status) => return Err(failed(server_message(&status))),
                };
                if let Some(message) = lost {
                    failures += 1;
                    if failures > MAX_RETRIES {
                        return Err(failed(format!("lost the server at {}: {message}", self.address)));
                    }
                    tokio_sleep(Duration::from_millis(500 * failures as u64)).await;
                }
                let reattach = pb::ReattachExecuteRequest {
                    session_id: self.client.session_id().to_owned(),
                    user_context: self.user_context(),
                    operation_id: operation_id.clone(),
                    client_type: Some(client_type()),
                    last_response_id: last_response_id.clone(),
                    ..Default::default()
                };
                match self.client.reattach_execute(reattach).await {
                    Ok(s) => stream = s,
                    Err(e) => {
                        failures += 1;
                        if failures > MAX_RETRIES {
                            return Err(failed(format!("lost the server at {}: {}", self.address, e.message())));
                        }
                        tokio_sleep(Duration::from_millis(500 * failures as u64)).await;
                    }
                }
            }
            let release = pb::ReleaseExecuteRequest {
                session_id: self.client.session_id().to_owned(),
                user_context: self.user_context(),
                operation_id,
                client_type: Some(client_type()),
                release: Some(pb::release_execute_request::Release::ReleaseAll(
                    pb::release_execute_request::ReleaseAll {},
                )),
                ..Default::default()
            };
            let _ = self.client.release_execute(release).await;
            Ok(responses)
        })
    }

    /// Runs `relation` and returns its rows as Arrow record batches.
    pub(crate) fn collect(&self, relation: pb::Relation, step: &str) -> Result<Vec<RecordBatch>, ClusterError> {
        let plan = pb::Plan { op_type: Some(pb::plan::OpType::Root(relation)) };
        let mut batches = Vec::new();
        for response in self.execute(plan, step)? {
            if let Some(ResponseType::ArrowBatch(batch)) = response.response_type {
                let reader =
                    arrow_ipc::reader::StreamReader::try_new(Cursor::new(batch.data.to_vec()), None).map_err(|e| {
                        ClusterError::Spark { step: step.to_owned(), message: format!("bad Arrow data: {e}") }
                    })?;
                for b in reader {
                    batches.push(b.map_err(|e| ClusterError::Spark {
                        step: step.to_owned(),
                        message: format!("bad Arrow data: {e}"),
                    })?);
                }
            }
        }
        Ok(batches)
    }

    fn command(
        &self,
        command: pb::command::CommandType,
        step: &str,
    ) -> Result<Vec<pb::ExecutePlanResponse>, ClusterError> {
        let plan = pb::Plan { op_type: Some(pb::plan::OpType::Command(pb::Command { command_type: Some(command) })) };
        self.execute(plan, step)
    }

    /// Runs a SQL statement now (`CACHE TABLE` included: it is eager as a command).
    pub(crate) fn sql_command(&self, sql: &str, step: &str) -> Result<(), ClusterError> {
        let command = pb::SqlCommand { input: Some(super::plan::sql(sql)), ..Default::default() };
        self.command(pb::command::CommandType::SqlCommand(command), step).map(drop)
    }

    /// Names `relation` as a temporary view of this session.
    pub(crate) fn create_view(&self, name: &str, relation: pb::Relation, step: &str) -> Result<(), ClusterError> {
        let command = pb::CreateDataFrameViewCommand {
            input: Some(relation),
            name: name.to_owned(),
            is_global: false,
            replace: true,
        };
        self.command(pb::command::CommandType::CreateDataframeView(command), step).map(drop)
    }

    /// Names `relation` as view `name` and caches it now, so later steps read it from memory.
    pub(crate) fn cache_view(&mut self, name: &str, relation: pb::Relation, step: &str) -> Result<(), ClusterError> {
        self.create_view(name, relation, step)?;
        self.sql_command(&format!("CACHE TABLE {name}"), step)?;
        self.cached.push(name.to_owned());
        Ok(())
    }

    /// Runs an ML command and returns its result.
    pub(crate) fn ml(&mut self, command: pb::MlCommand, step: &str) -> Result<pb::MlCommandResult, ClusterError> {
        let responses = self.command(pb::command::CommandType::MlCommand(command), step)?;
        let result = responses
            .into_iter()
            .find_map(|r| match r.response_type {
                Some(ResponseType::MlCommandResult(m)) => Some(m),
                _ => None,
            })
            .ok_or_else(|| ClusterError::Spark {
                step: step.to_owned(),
                message: "the server sent no ML result".into(),
            })?;
        if let Some(pb::ml_command_result::ResultType::OperatorInfo(info)) = &result.result_type
            && let Some(pb::ml_command_result::ml_operator_info::Type::ObjRef(r)) = &info.r#type
        {
            self.objects.push(r.id.clone());
        }
        Ok(result)
    }
}

impl Drop for Session {
    /// Best effort: uncache what this session cached, delete its models, release the session.
    fn drop(&mut self) {
        for view in std::mem::take(&mut self.cached) {
            let _ = self.sql_command(&format!("UNCACHE TABLE IF EXISTS {view}"), "cleaning up");
        }
        let objects = std::mem::take(&mut self.objects);
        if !objects.is_empty() {
            let delete = pb::MlCommand {
                command: Some(pb::ml_command::Command::Delete(pb::ml_command::Delete {
                    obj_refs: objects.into_iter().map(|id| pb::ObjectRef { id }).collect(),
                    evict_only: None,
                })),
            };
            let _ = self.command(pb::command::CommandType::MlCommand(delete), "cleaning up");
        }
        let _ = block_on(self.client.release_session());
    }
}

fn client_type() -> String {
    format!("trainbench/{}", env!("CARGO_PKG_VERSION"))
}

/// A failure of the connection rather than of the operation: worth a reattach.
fn is_transport_failure(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable || is_transport_text(status.message())
}

/// An error message that speaks of the connection, not of the query.
fn is_transport_text(m: &str) -> bool {
    ["INVALID_CURSOR.DISCONNECTED", "transport error", "h2 protocol error", "connection", "broken pipe", "Unavailable"]
        .iter()
        .any(|t| m.contains(t))
}

/// The server's error, without the JVM stack trace that sometimes follows it.
fn server_message(status: &tonic::Status) -> String {
    let message = status.message().trim();
    let first: Vec<&str> = message.lines().take(6).collect();
    let mut out = first.join("\n");
    if message.lines().count() > 6 {
        out.push_str("\n...");
    }
    if out.is_empty() { format!("{:?}", status.code()) } else { out }
}

async fn tokio_sleep(d: Duration) {
    tokio::time::sleep(d).await;
}
