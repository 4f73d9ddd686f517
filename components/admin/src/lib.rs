use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    spinling_spin::serve(request, response_out, spinling_spin::Group::ADMIN).await
}
