//! [`MessageStream`], what [`crate::Bus::read`] returns.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream::{BoxStream, Stream};
use futures::{FutureExt, StreamExt};

use crate::Message;
use crate::error::Result;

type Inner = BoxStream<'static, Result<Message>>;

enum State {
    /// The start position is not fixed yet (JetStream: the consumer is not created yet).
    Starting(BoxFuture<'static, Result<Inner>>),
    Running(Inner),
    Done,
}

/// An ordered, gapless, duplicate-free stream of messages: it catches up from its start position
/// and then follows live appends until dropped.
///
/// It never ends by itself while the bus is healthy. An `Err` item is final: the stream ends
/// after it, and a reader resumes with a new `read` from its cursor. The embedded reader yields
/// one only if the store fails; a JetStream reader yields one if it cannot start (server
/// unreachable, stream missing) and otherwise rides out reconnects, server restarts and failovers
/// by itself (logging them through `tracing`), resuming after the last message it delivered.
///
/// Call [`MessageStream::ready`] to fix the start position before publishing things the reader
/// must see; polling the stream does it too.
pub struct MessageStream {
    state: State,
}

impl std::fmt::Debug for MessageStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Starting(_) => "starting",
            State::Running(_) => "running",
            State::Done => "done",
        };
        f.debug_struct("MessageStream")
            .field("state", &state)
            .finish()
    }
}

impl MessageStream {
    pub(crate) fn running(inner: Inner) -> Self {
        MessageStream {
            state: State::Running(inner),
        }
    }

    pub(crate) fn starting(setup: BoxFuture<'static, Result<Inner>>) -> Self {
        MessageStream {
            state: State::Starting(setup),
        }
    }

    /// Waits until the reader's start position is fixed on the bus, so that everything appended
    /// after this returns is delivered (for [`crate::Start::New`]: nothing appended before the
    /// `read` call is, everything appended after `ready` returns is).
    ///
    /// The embedded bus fixes the position inside `read` itself, so this returns at once; a
    /// JetStream reader creates its consumer here. An error means the reader could not start,
    /// and the stream is then finished.
    pub async fn ready(&mut self) -> Result<()> {
        if let State::Starting(setup) = &mut self.state {
            match setup.await {
                Ok(inner) => self.state = State::Running(inner),
                Err(err) => {
                    self.state = State::Done;
                    return Err(err);
                }
            }
        }
        Ok(())
    }
}

impl Stream for MessageStream {
    type Item = Result<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match &mut self.state {
                State::Starting(setup) => match setup.poll_unpin(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(inner)) => self.state = State::Running(inner),
                    Poll::Ready(Err(err)) => {
                        self.state = State::Done;
                        return Poll::Ready(Some(Err(err)));
                    }
                },
                State::Running(inner) => {
                    let item = futures::ready!(inner.poll_next_unpin(cx));
                    if item.is_none() {
                        self.state = State::Done;
                    }
                    return Poll::Ready(item);
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }
}
